#!/usr/bin/env python3
"""Generate a synthetic but realistic assistant memory folder for benchmarks.

Standalone (stdlib only). Layout written under OUT_DIR::

    SOUL.md                      persona, ~40 lines
    MEMORY.md                    long-term facts, 2,000-3,000 lines
    daily/YYYY-MM-DD.md          ~75% of the files, 20-80 lines each
    projects/ people/ notes/ ... the rest, nested up to 3 folders deep

Text is built from word lists with Zipf-like frequencies, so keyword search
over the corpus behaves roughly like it would on real notes (frequent and
rare words, ticket ids such as ``OPS-4821``, versions, emails, URLs).

Output is a pure function of (files, seed): two runs are byte-identical.

Usage::

    python bench/generate.py OUT_DIR [--files 1000] [--seed 0] [--force]

Python API::

    generate_memory(root, *, files=1000, seed=0) -> {"files", "lines", "bytes"}
    edit_one_line(path, rng)   # change one word in one line mid-file, in place
    append_line(path, text)    # append one line, in place
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import random
import re
import sys
from bisect import bisect_right
from itertools import accumulate
from pathlib import Path

__all__ = ["generate_memory", "edit_one_line", "append_line", "main"]

# --------------------------------------------------------------------------
# Word lists. Kept as whitespace-separated strings; duplicates are dropped.
# --------------------------------------------------------------------------

FIRST_NAMES = """
Ana Ben Chloe Dev Elif Farah Gus Hana Ines Jonas Kai Lena Marco Nadia Omar
Priya Quinn Rosa Sam Tomas Uma Viktor Wen Yusuf Zoe Aisha Bruno Carmen Dmitri
Esther Felix Greta Hugo Ingrid Jamal Keiko Lars Mei Nico Olga Pablo Rhea Sven
Tariq Ulla Vera Will Ximena Yara Zane Amara Bilal Clara Diego Emil Fatima
Gideon Helga Ivan Jade Kofi Leila Mateo Noor Oscar Petra Rafael Sofia Theo
Una Valentina Wes Yosef Zara Alba Boris Cyrus Daria Enzo Freya Gemma Hamid
Isla Joel Kamala Luca Maya Nils Orla Pieter Raj Selma Tobias Ursula Vikram
Wilma Yann Zeynep Anouk Bram Ciaran Dalia Eamon Flora Goran Hattie Idris Juno
Karim Lotte Mina Niamh Otto Paloma Rory Saskia Teodor Ada Basil Cora Duncan
Edith Finn Gwen Harvey Iris Jasper Kit Leon Magnus Nell Odile Percy Ronan
Sunil Thea Ivo Wanda Youssef Zora Anika Callum Delphine Erik Fionn Gita Hector
Ilse Jarek Kenji Liesel Malik Nora Olu Quentin Renata Sipho Tove Alejandro
Beatriz Chidi Dagny Emeka Fernanda Giulia Henrik Imogen Joaquin Kasia Linnea
Mohammed Nkechi Oksana Pilar Ravi Siobhan Takumi Ugo Viola Wiktor Xavier
Yuki Zsofia Maren Ruth Aoife Lucas Marta Jorge Hiro Sanne Dries Ewa
""".split()

LAST_NAMES = """
Okafor Ribeiro Lindqvist Moreau Novak Haddad Tanaka Kowalski Brennan Fischer
Castillo Patel Osei Nakamura Larsen Dubois Romano Schultz Walsh Mendes Ivanova
Hughes Petrov Alvarez Kim Nguyen Jansen Bakker Costa Rossi Silva Yilmaz Demir
Sato Suzuki Hansen Berg Andersson Nilsson Kelly Murphy Byrne Quinn Fraser
Campbell Stewart Reid Morgan Price Evans Hale Ward Cole Frost Marsh Holt Rowe
Lowe Stone Weller Ashby Thorne Keane Doyle Carver Maddox Pryce Sandoval Herrera
Vargas Ortega Molina Rahman Chowdhury Iyer Menon Raghavan Kaur Singh Gill Mehta
Bose Adeyemi Mensah Boateng Nwosu Eze Abara Farouk Nasser Aziz Karimi Tehrani
Cohen Levi Shapiro Weiss Katz Horvath Szabo Varga Toth Popescu Ionescu Dragan
Kovac Horak Dvorak Svoboda Lehmann Krause Vogel Becker Wolf Richter Brandt
Engel Lund Strand Vik Dahl Holm Eklund Sandberg Virtanen Korhonen Laine Maki
Heikkinen Costello Devlin Gallagher Halloway Brueckner Pereira Ferreira Lopes
Almeida Esposito Bruno Greco Conti Marino Fontana Caruso Ferrari Barbieri
Leclerc Girard Fontaine Rousseau Lambert Mercier Faure Bonnet Garnier Chevalier
Mwangi Otieno Kamau Achieng Banda Phiri Dlamini Ndlovu Zulu Botha Pretorius
Watanabe Ito Kobayashi Yamamoto Chen Wang Liu Zhang Huang Zhao Wu Lin Ho Tran
Pham Le Vu Dang Bui Santos Reyes Cruz Flores Rivera Gomez Diaz Torres Ramos
""".split()

CITIES = """
Lisbon Porto Madrid Seville Barcelona Valencia Marseille Lyon Paris Brussels
Antwerp Ghent Amsterdam Utrecht Rotterdam Delft Hamburg Berlin Leipzig Munich
Vienna Prague Krakow Warsaw Budapest Zagreb Ljubljana Trieste Venice Bologna
Florence Rome Naples Palermo Athens Thessaloniki Istanbul Sofia Bucharest
Copenhagen Malmo Stockholm Oslo Bergen Helsinki Tallinn Riga Vilnius Dublin
Galway Cork Belfast Edinburgh Glasgow Manchester Leeds Sheffield Bristol Bath
Cardiff Oxford Cambridge Brighton London York Newcastle Reykjavik Toronto
Montreal Vancouver Seattle Portland Oakland Denver Austin Chicago Boston Brooklyn
Philadelphia Atlanta Tokyo Kyoto Osaka Sapporo Seoul Busan Taipei Singapore
Bangkok Hanoi Melbourne Sydney Auckland Wellington Nairobi Accra Lagos
Marrakech Cairo Tunis Dakar Bogota Lima Santiago Montevideo Mexico Oaxaca
Geneva Zurich Basel Bern Lausanne Luxembourg Salzburg Graz Innsbruck Dresden
""".split()

LOCAL_PLACES = [
    "the office", "the co-working space", "the bakery on Elm Street", "Riverside Park",
    "the climbing gym", "the library", "the farmers market", "the station", "the airport",
    "Gate 22", "the dentist", "the GP surgery", "the garden centre", "the hardware store",
    "the pool", "the gym", "the school gate", "the pub on Cole Road", "Harbour Cafe",
    "Mill Lane", "the allotment", "the vet", "the post office", "the bike shop",
    "the ramen place", "the Thai place", "Rice & Things", "the bookshop", "the town hall",
    "the canal path", "the community hall", "Temple Quay", "the cinema", "the museum",
    "the lab", "the warehouse", "the client site", "the hotel lobby", "the train",
    "the kitchen", "the garage", "the loft", "the spare room", "the balcony",
]

ORGS = """
Acme Northwind Globex Initech Hooli Vandelay Stark Wayne Umbra Soylent Tyrell
Cyberdyne Wonka Oscorp Gringotts Monarch Aperture Blackmesa Contoso Fabrikam
Litware Adatum Tailspin Proseware Wingtip Lucerne Margie Fourth Coho Alpine
Bluefin Redwood Kestrel Lumen Verdant Helix Quanta Nimbus Ardent Polaris
""".split()

DOMAINS = """
gmail.com fastmail.com proton.me outlook.com icloud.com acme.io northwind.com
globex.net initech.co hooli.dev contoso.org fabrikam.eu lumen.ai verdant.io
helix-labs.com polaris.systems kestrel.cloud example.org
""".split()

PROJECTS = """
Atlas Heron Nimbus Quartz Lighthouse Kestrel Orchard Tidepool Juniper Beacon
Saffron Granite Marigold Pelican Sextant Culvert Lantern Meridian Osprey Fjord
Aurora Bramble Cobalt Driftwood Ember Falcon Glacier Harbor Indigo Jetstream
Keystone Larkspur Monsoon Nettle Obsidian Pinecone Quill Riverbed Sparrow
Thistle Umber Vortex Willow Zephyr Hollyhock Basalt Cinder Dune Estuary
Foxglove Gannet Hawthorn Ironwood Kelp Lichen Magpie Nautilus Otter Puffin
""".split()

PERSONAL_PROJECTS = [
    "the kitchen remodel", "the half marathon", "Portuguese lessons", "the tax return",
    "the garden shed", "the wedding speech", "the photo book", "the bike rebuild",
    "the allotment plan", "the loft conversion", "piano practice", "the sourdough experiment",
    "the family reunion", "the move", "the newsletter", "the conference talk",
]

TECH = """
postgres redis kafka kubernetes terraform grafana prometheus nginx docker python
rust typescript react fastapi django celery airflow dagster s3 lambda sqlite
elasticsearch opensearch clickhouse duckdb pandas numpy pytorch onnx jupyter
jenkins argo helm vault consul envoy istio graphql grpc protobuf websocket
oauth jwt ldap cron systemd bash zsh tmux neovim vscode git github gitlab
sentry datadog pagerduty opsgenie cloudflare fastly nodejs deno bun vite webpack
tailwind svelte vue angular flask sqlalchemy alembic pydantic pytest tox ruff
mypy poetry pipenv conda go java kotlin scala spark flink beam bigquery
snowflake redshift dbt looker metabase superset tableau excel notion obsidian
linear jira confluence slack zoom figma miro loom ansible packer pulumi nomad
minio ceph zfs btrfs wireguard tailscale openvpn haproxy traefik caddy rabbitmq
nats mqtt zeromq memcached etcd zookeeper cassandra mongodb dynamodb firestore
supabase vercel netlify heroku fly.io hetzner digitalocean aws gcp azure
kubectl k9s lazygit ripgrep fzf jq yq curl httpie wireshark tcpdump strace
perf valgrind gdb lldb llvm clang gcc cmake bazel make ninja nix homebrew apt
""".split()

NOUNS_WORK = """
meeting plan budget report draft deadline review release deploy migration schema
index query table column dashboard alert incident outage postmortem runbook
pipeline job queue worker cluster node service endpoint request response cache
timeout retry backlog ticket sprint roadmap milestone estimate proposal contract
invoice payment subscription account password login session token permission
role team manager interview candidate offer onboarding handover feedback retro
demo workshop presentation slide deck spreadsheet document spec design mockup
prototype wireframe experiment hypothesis metric baseline benchmark latency
throughput memory disk backup restore snapshot volume bucket certificate domain
firewall network router laptop monitor keyboard charger cable battery note idea
question answer decision tradeoff risk issue bug fix patch feature refactor test
coverage lint build artifact binary package dependency library framework plugin
module function variable config setting flag toggle rollout rollback canary
hotfix branch commit merge conflict rebase tag version changelog license audit
compliance policy procedure checklist template form survey poll price quote
discount fee forecast target objective outcome initiative theme epic story task
subtask walkthrough scope requirement constraint assumption blocker owner
stakeholder sponsor vendor supplier partner customer client user tenant signup
churn funnel cohort retention conversion revenue margin email thread message
call channel calendar agenda minutes summary outline transcript recording
screenshot diagram chart graph report repo webhook cron parser scheduler
exporter importer crawler indexer tokenizer embedding vector shard replica
primary failover quota limit budget headcount offsite standup planning okr
""".split()

NOUNS_LIFE = """
kitchen oven fridge freezer dishwasher boiler radiator window door roof gutter
garden hedge lawn shed fence tree seedling tomato bean herb compost hose ladder
car bike tyre train ticket flight hotel booking passport visa suitcase itinerary
museum gallery concert festival exhibition dinner lunch breakfast brunch coffee
tea recipe soup salad bread cake pie pasta curry stew sandwich snack grocery
doctor dentist appointment prescription vaccine blood test physio knee shoulder
back headache cold cough allergy sleep nap run walk swim ride stretch workout
book chapter article paper essay podcast episode album playlist film series
course lesson exercise homework exam grade school teacher class parent child
birthday anniversary party gift card present wedding reunion holiday weekend
evening morning afternoon night week month quarter year season receipt refund
tax pension mortgage loan savings salary bonus expense rent bill utility
insurance claim warranty repair plumber electrician builder neighbour landlord
agent lawyer accountant banker courier delivery parcel order return exchange
complaint voicemail chat photo video map route detour traffic parking fuel
key lock alarm sensor thermostat heater fan bulb plant pot soil fertiliser seed
harvest weed pest slug bird fox cat dog habit routine streak goal resolution
reflection journal gratitude mood energy focus distraction break breath
meditation yoga apartment flat house room hallway stairs attic basement cellar
porch driveway phone tablet printer camera headphones speaker desk chair lamp
shelf drawer sofa rug blanket jacket boots umbrella backpack bottle mug kettle
toaster blender bin recycling laundry towel pillow mattress curtain paint
wallpaper tile sink tap shower bath toilet mirror cupboard wardrobe garage
""".split()

NOUNS = NOUNS_WORK + NOUNS_LIFE

IRREGULAR_PLURALS = {
    "child": "children", "person": "people", "shelf": "shelves", "knife": "knives",
    "life": "lives", "leaf": "leaves", "half": "halves", "wife": "wives",
    "series": "series", "analysis": "analyses", "minutes": "minutes", "fish": "fish",
}

VERBS_WORK = """
fix ship write review merge deploy test debug refactor document plan schedule
cancel email message ping ask answer follow chase update check read finish start
draft send sign pay order return rename archive delete restore export import
share present demo discuss decide agree propose estimate prioritise triage
escalate investigate measure profile benchmark tune optimise simplify split
combine move rewrite rerun restart reboot monitor patch rotate renew compare
research outline summarise record organise sort label file scan print post
install upgrade configure migrate publish announce explain pair mentor coach
interview hire onboard shadow handover automate script log trace reproduce
bisect revert rollback release tag freeze unblock block retry backfill
deprecate document clarify reassign close reopen approve reject
""".split()

VERBS_LIFE = """
book cancel call email message ask answer check read finish start send pay order
buy return collect pick drop clean tidy paint repair replace install compare
research organise sort label file print post pack unpack wash cook bake prepare
water prune plant harvest mow weed walk run swim cycle climb stretch rest sleep
visit meet host invite thank congratulate remind confirm reschedule edit publish
celebrate practise learn teach fold iron hoover defrost descale bleed hang fix
sweep recycle donate sell borrow lend wrap frame sand varnish measure
""".split()

VERBS = VERBS_WORK + VERBS_LIFE

IRREGULAR_PAST = {
    "write": "wrote", "pay": "paid", "buy": "bought", "send": "sent", "run": "ran",
    "swim": "swam", "sleep": "slept", "meet": "met", "teach": "taught", "read": "read",
    "split": "split", "find": "found", "make": "made",
    "drop": "dropped", "ship": "shipped", "plan": "planned", "stop": "stopped",
    "prune": "pruned", "log": "logged", "tag": "tagged", "pin": "pinned",
    "freeze": "froze", "rerun": "reran", "rewrite": "rewrote", "sign": "signed",
    "mow": "mowed", "bake": "baked", "pack": "packed", "pair": "paired",
    "proofread": "proofread", "hang": "hung", "lend": "lent", "sell": "sold",
    "sweep": "swept", "bleed": "bled", "iron": "ironed",
}
DOUBLE_FINAL = {"drop", "ship", "plan", "stop", "run", "swim", "log", "tag", "pin", "rerun"}

ADJ_COMMON = """
new old quick slow big small long short early late urgent minor major good great
solid rough tricky simple complex obvious subtle weird odd strange expensive
cheap free shared final initial first second next last previous current
upcoming overdue pending useful useless helpful confusing clear vague detailed
brief careful decent awkward surprising boring interesting exciting worrying
reassuring annoying lovely nice bad fine proper half-done messy neat
""".split()

ADJ_WORK = """
critical flaky stable broken clean noisy internal external public private paid
manual automatic weekly monthly quarterly yearly daily nightly blocked open
closed stale fresh partial complete verbose productive slow-moving fast-moving
promising disappointing fragile robust legacy modern outdated deprecated
experimental beta read-only async sync idempotent cached sharded regional
""".split()

ADJ_LIFE = """
quiet busy calm tired rested happy annoyed warm cold wet dry sunny rainy windy
foggy icy grey bright dark heavy light full empty cosy muddy tasty bland spicy
crispy soggy sore stiff sleepy relaxed cheerful grumpy chilly humid peaceful
noisy crowded lively sweet salty fresh ripe overgrown leaky draughty
""".split()

ADJECTIVES = ADJ_COMMON + ADJ_WORK + ADJ_LIFE

ADVERBS = """
quickly slowly finally mostly barely nearly already still again probably maybe
definitely honestly roughly carefully briefly properly eventually suddenly
surprisingly luckily sadly apparently clearly actually basically
""".split()

FOODS = """
ramen pho curry dal risotto paella tacos burrito falafel shakshuka pancakes
porridge granola sourdough bagels croissants dumplings sushi bibimbap kimchi
lasagne gnocchi pizza halloumi tagine couscous hummus laksa kottu biryani
pierogi goulash borscht chowder fishcake moussaka souvlaki gyoza tempura
katsu udon soba tofu tempeh lentils chickpeas quinoa polenta frittata quiche
crumble brownies flapjacks scones cheesecake tiramisu gelato churros baklava
""".split()

ACTIVITIES = [
    "Ran 5k", "Ran 10k", "Long run", "Swam 40 lengths", "Yoga class", "Climbing session",
    "Cycled to work", "Walked the canal path", "Physio exercises", "Pilates",
    "Gym: legs", "Gym: upper body", "Tennis with {F}", "Five-a-side", "Bouldering with {F}",
    "Piano practice", "Guitar practice", "Sketching", "Gardening", "Baked bread",
]

EATERIES = [
    "the ramen place", "the Thai place", "Rice & Things", "Harbour Cafe", "the pub on Cole Road",
    "Casa Lupo", "Bao Bar", "the Lebanese place", "Pizzeria Nonna", "the noodle bar",
    "Green Fig", "the fish shack", "Dosa Corner", "the tapas bar", "Little Kitchen",
    "the canteen", "Blue Door Bistro", "the food market", "Mezze House", "the taqueria",
]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TICKET_PREFIXES = ["OPS", "ENG", "INFRA", "BUG", "WEB", "DATA", "SEC", "PLAT", "MOB", "API", "HR"]
FAMILY = ["Mum", "Dad", "Grandma", "Grandpa", "my sister", "my brother", "Aunt Jo",
          "Uncle Rui", "the kids", "my cousin"]
MEETINGS = ["standup", "1:1", "sync", "planning", "retro", "design review", "demo",
            "all-hands", "interview", "coffee chat", "incident review", "kickoff",
            "steering meeting", "office hours", "pairing session", "catch-up"]
MOODS = ["ok", "good", "great", "tired", "meh", "stressed", "calm", "happy", "flat", "energetic"]
WEATHER = ["rain", "sun", "drizzle", "fog", "wind", "snow", "clouds", "heatwave", "frost"]
TAGS = ["work", "family", "health", "running", "travel", "garden", "reading", "money",
        "home", "kids", "learning", "music", "friends", "admin", "cooking", "oncall"]
LANGS = ["bash", "python", "yaml", "sql", "json", "toml", "text", "sh"]

# --------------------------------------------------------------------------
# Sentence templates. Slots are {NAME}; see Gen._slots for what each fills.
# --------------------------------------------------------------------------

T_WORK = """
Talked to {P} about the {OBJ}; {F} thinks we should {V} it {WHEN}.
{VD} the {OBJ} for {PR} and pushed {VER}.
Need to {V} the {A} {N} {WHEN}.
{TK}: {VD} the {N} in {TECH}, still {A} under load.
{F} is blocked on {TK}, I'm on the {OBJ}.
Reviewed {P}'s PR for the {N} ({SHA}), left {NUM} comments.
Latency on {TECH} went from {NUM}ms to {BIG}ms after the {N} change.
{PR} demo went {A}; {P} asked for a {N} by {DAY}.
Emailed {EM} about the {N}, no reply yet.
Spent {DUR} {VG} the {OBJ}, {AV} {A}.
Budget for {PR} is {MONEY}, {PCT} already spent.
Fixed the {A} bug in {PR} ({TK}); root cause was a {A} {N} in the {N}.
Weekly sync with {F} and {F}: {NS}, {NS}, and the {OBJ}.
{P} mentioned that {ORG} is hiring for a {A} {N} role.
Blocked by {TK} until {F} {VD} the {N}.
Paired with {F} on the {TECH} {N} for {DUR}.
Rolled out {PR} {VER} to {PCT} of users; error rate {A}.
Incident {TK}: {TECH} {N} ran out of {N} at {T}, {VD} it by {T}.
Moved the {N} from {TECH} to {TECH}; {NUM} {NS} left to {V}.
{F} wants the {OBJ} in the {MON} release.
Wrote up the {N} for {PR} and shared it in #{CH}.
Agreed with {F} to {V} the {N} and {V} the {N} {WHEN}.
Cost of the {TECH} {N} is about {MONEY} a month.
The {A} {N} in {PR} keeps failing on {TECH}; see {TK}.
Asked {F} to {V} the {OBJ} so we can {V} {WHEN}.
On call this week; {NUM} pages so far, mostly {A} {NS}.
Deployed {PR} at {T}, {VD} the {N} at {T}.
{F} and I {VD} the {NS} for {PR}; {NUM} still open.
Draft of the {PR} {N} is in {TECH}, needs a {A} pass.
Estimate for the {OBJ}: {NUM} days, maybe {NUM} with {F}.
Interviewed a {A} candidate for the {N} role with {F}; leaning yes.
{ORG} sent the renewal quote for {TECH}: {MONEY} a year, up {PCT}.
Wrote the {N} section of the {PR} doc; {F} to review {WHEN}.
Turned off the {TECH} {N} alert, it fired {NUM} times overnight for nothing.
{F} proposed moving {PR} to {TECH}; I want numbers first.
Cleaned up {NUM} stale branches in the {PR} repo.
Migration of the {N} table finished at {T}, {BIG} rows.
Retro for {PR}: {NS} went well, {NS} did not.
Planning for {MON}: {PR} first, then the {OBJ}.
Handover to {F} before leave: {TK}, {TK} and the {OBJ}.
The {TECH} upgrade to {VER} broke the {N}; pinned the old version.
{P} from {ORG} asked about the {N} API; sent them {URL}.
Skipped the {MEET}, worked on the {OBJ} instead.
{MEET} with {F} ran over by {DUR}.
Dry run of the {PR} {N} went {A}; real run {WHEN}.
"""

T_LIFE = """
Met {P} at {PL} at {T}.
Lunch with {F} at {EAT}: {FOOD}, talked about {TOPIC}.
Called {FAM} about {TOPIC}; {AV} {A}.
Booked the {N} for the {MON} trip to {CITY}.
Paid {MONEY} for the {N}.
Slept {NUM} hours, {A} morning.
{F} prefers {FOOD} over {FOOD}.
Pick up {NS} from {PL} {WHEN}.
{ACT}, felt {A}.
Made {FOOD} for dinner; {F} loved it.
{FAM} is visiting {WHEN}; need to {V} the {N} first.
Walked to {PL} in the {W}, {A} but {A}.
The {N} in the {ROOM} is {A} again; call the {TRADE}.
{F}'s birthday is on the {ORD}; ideas: {N}, {N} or {FOOD}.
Took the train to {CITY}, {DUR} late.
Watered the {NS} and {VD} the {N}.
{FAM} sent photos from {CITY}.
Dinner at {EAT} with {F} and {F}, {MONEY} for {NUM}.
Reminder: {F} is allergic to {FOOD}.
Quiet evening, {VD} the {N} and read.
Renewed the {N} insurance, {MONEY} a year now.
Dentist at {T} on {DAY}.
Ordered a new {N} from {ORG}, arrives {WHEN}.
Dinner at {EAT} with {F}: {FOOD}, {A}.
Finished the {MEDIA} about {TOPIC}, {AV} {A}.
Kids had {SCHOOL} at school; {F} picks them up at {T}.
Bought {FOOD} ingredients at {PL}, {MONEY}.
{F} recommended the {MEDIA} on {TOPIC}.
Bin day tomorrow: recycling and garden waste.
The {N} is making a {A} noise again.
Long call with {FAM}; they are thinking about moving to {CITY}.
Parcel from {ORG} left with the neighbour.
Swapped the {N} for a {A} one, much better.
{F} and {F} came round for {FOOD}.
Train tickets to {CITY} for {MON}: {MONEY} return.
Weighed up the {N} options with {F}; going with the {A} one.
Cleared out the {ROOM}, {NUM} bags to the charity shop.
Read {NUM} pages of {BOOK} before bed.
Weekend plan: {ACT}, then {FOOD} at {EAT}.
"""

T_NOTE = """
The {A} {N} is the main risk for {PR}.
We {VD} the {NS} {AV}, which made the {N} {A}.
{TECH} handles the {N}; {TECH} handles the {NS}.
Most {NS} come from {ORG}, about {PCT} of the total.
The {N} should stay {A} until the {N} is {VD}.
If the {N} fails, {V} the {N} and {V} the {OBJ}.
{F} owns the {N}; {F} owns the {NS}.
Keep the {N} {A}: one {N} per {N}.
There is a {A} {N} between the {N} and the {N}.
Numbers from {MON}: {BIG} {NS}, {PCT} {A}, {NUM} {A}.
Open question: do we {V} the {N} or {V} the {OBJ}?
Decision: {V} the {N} in {TECH}, revisit in {MON}.
This replaces the {A} {N} described in {TK}.
The {N} lives in {PATH} and is read at startup.
Contact {EM} for access to the {N}.
See {URL} for the {A} version.
{P} wrote the first {N}; it was {A} but {A}.
We tried {TECH} first, but the {N} was too {A}.
Each {N} has an owner, a {N} and a {A} {N}.
The {N} runs every {DUR} and takes about {DUR}.
Expect {NUM} to {BIG} {NS} per {N} at peak.
{VER} changed the {N} format, so {V} the {NS} after upgrading.
The {N} is owned by {F} and reviewed every {MON}.
Known issue: the {A} {N} times out after {DUR}; workaround in {TK}.
Historically the {N} was handled by {ORG}; we took it in-house in {MON}.
Rule of thumb: never {V} the {N} on a Friday.
The {TECH} {N} is {A}; the {TECH} one is {A} but cheaper.
Everything under {PATH} is generated; do not edit by hand.
Ask {F} before changing the {N}; it feeds the {OBJ}.
Summary from {P}: the {N} is fine, the {N} is not.
"""

T_TODO = """
{V} the {OBJ}
{V} {F} about the {N}
{V} the {N} for {PR}
Book {N} for {DAY}
{V} {TK}
Reply to {EM}
Pay the {N} ({MONEY})
Buy {NS} and {FOOD}
{V} the {A} {NS} {WHEN}
Ask {F} about {TOPIC}
Follow up on {TK} with {F}
Renew {N} before the {ORD}
{V} the {N} in {TECH}
Call {FAM}
"""

T_CLAUSE = """
the {N} was {A}
{F} will {V} the {OBJ} {WHEN}
we {VD} the {NS} {AV}
it needs a {A} {N}
{PR} still depends on {TECH}
I {VD} {NUM} {NS}
{F} agreed
nothing {A} yet
the {N} is {A} now
{F} said the {N} looked {A}
which took {DUR}
after the {N} with {F}
see {TK}
so the {N} stays {A}
then {VD} the {N}
because the {N} was {A}
until {F} is back {WHEN}
as discussed with {P}
but the {OBJ} is still {A}
for the {A} {N}
mostly {NS} and {NS}
while {F} {VD} the {N}
which {F} had flagged
not urgent
probably next {MON}
same as last time
but only on {TECH}
if {F} has time
once {TK} lands
for about {MONEY}
in {CITY}
without the {N}
ahead of the {MEET}
and it worked
still waiting on {ORG}
{F} is on it
as per {TK}
with {NUM} {NS} to go
before the {N} review
thanks to {F}
unlike the {A} {N}
which I should have done earlier
"""

T_SHORT = """
Call {F} back.
Buy {NS}.
{TK} done.
Gym at {T}.
Ship {PR} {VER}.
{FOOD} for dinner.
{F} is off {WHEN}.
Read about {TECH}.
{DUR} of focus time.
No meetings today.
{ACT}.
{A} day overall.
Emailed {F}.
Rain all day.
Rest day.
"""

HEADINGS_DAILY = ["Morning", "Standup", "Work", "Focus", "Meetings", "Calls", "Lunch",
                  "Errands", "Health", "Family", "Evening", "Reading", "Learned", "Ideas",
                  "Notes", "Links", "Decisions", "Open questions", "Gratitude", "Todo",
                  "Tomorrow"]
WORK_HEADINGS = {"Standup", "Work", "Focus", "Meetings", "Calls", "Decisions"}

NOTE_HEADINGS = {
    "project": ["Context", "Goals", "Non-goals", "Background", "Design", "Architecture",
                "Data model", "API", "Rollout plan", "Risks", "Open questions", "Timeline",
                "Decisions", "Alternatives considered", "Testing", "Monitoring",
                "Action items", "Notes", "Costs", "Dependencies", "Status", "Retro"],
    "people": ["Context", "How we met", "Work", "Family", "Preferences", "Conversations",
               "Follow-ups", "Gift ideas", "Notes", "Timeline", "Contact"],
    "notes": ["Summary", "Notes", "Background", "Ideas", "Questions", "Links", "Next steps",
              "Thoughts", "Details", "Log", "References", "Takeaways"],
    "reading": ["Summary", "Key ideas", "Quotes", "Notes by chapter", "What I disagree with",
                "Takeaways", "Related", "Questions"],
    "travel": ["Itinerary", "Bookings", "Packing list", "Food", "Places to see", "Budget",
               "Transport", "Notes", "Contacts", "Day by day"],
    "recipes": ["Ingredients", "Method", "Notes", "Variations", "Timing", "Shopping"],
    "learning": ["Overview", "Setup", "Commands", "Concepts", "Gotchas", "Examples",
                 "Exercises", "Resources", "Cheatsheet"],
    "areas": ["Overview", "Current state", "Plan", "Contacts", "Costs", "History",
              "Checklist", "Notes", "Next steps"],
}

BOOK_TITLES = [
    "The Pragmatic Programmer", "Thinking in Systems", "Deep Work", "The Overstory",
    "Designing Data-Intensive Applications", "Four Thousand Weeks", "Piranesi",
    "The Manager's Path", "A Philosophy of Software Design", "Klara and the Sun",
    "Braiding Sweetgrass", "Staff Engineer", "The Left Hand of Darkness", "Middlemarch",
    "An Elegant Puzzle", "The Dispossessed", "Accelerate", "Project Hail Mary",
    "Atomic Habits", "The Mythical Man-Month", "Stoner", "The Remains of the Day",
]


def _lines(block: str) -> list[str]:
    return [s.strip() for s in block.strip().splitlines() if s.strip()]


def _uniq(items):
    return list(dict.fromkeys(items))


def _plural(noun: str) -> str:
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _past(verb: str) -> str:
    if verb in IRREGULAR_PAST:
        return IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ied"
    return verb + "ed"


def _ing(verb: str) -> str:
    if verb in DOUBLE_FINAL:
        return verb + verb[-1] + "ing"
    if verb.endswith("e") and not verb.endswith(("ee", "ye")):
        return verb[:-1] + "ing"
    return verb + "ing"


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:60].rstrip("-") or "note"


_SLOT_RE = re.compile(r"\{(\w+)\}")
_AN_RE = re.compile(r"\b([Aa]) (?=[aeioAEIO]|[uU](?![snt]))")


def _compile(template: str) -> tuple:
    parts = _SLOT_RE.split(template)
    # even indices: literals, odd indices: slot names
    return tuple(parts)


class Zipf:
    """Draw from a list with P(rank k) ~ 1/k**s (ranks fixed by a seeded shuffle)."""

    __slots__ = ("items", "cum", "total", "rnd")

    def __init__(self, rng: random.Random, items, s: float = 1.0, shuffle: bool = True):
        items = _uniq(items)
        if shuffle:
            rng.shuffle(items)
        self.items = items
        self.cum = list(accumulate(1.0 / (k + 1) ** s for k in range(len(items))))
        self.total = self.cum[-1]
        self.rnd = rng.random

    def __call__(self):
        return self.items[bisect_right(self.cum, self.rnd() * self.total)]


# --------------------------------------------------------------------------
# Text generator
# --------------------------------------------------------------------------


class Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng
        r = rng
        self.first = Zipf(r, FIRST_NAMES, 1.05)
        lasts = _uniq(LAST_NAMES)
        doms = _uniq(DOMAINS)
        # Every first name gets one stable surname and email domain.
        self.full = {f: r.choice(lasts) for f in self.first.items}
        self.dom = {f: r.choice(doms) for f in self.first.items}
        self._nz = {"work": Zipf(r, NOUNS_WORK, 0.75), "life": Zipf(r, NOUNS_LIFE, 0.75)}
        self._vz = {"work": Zipf(r, VERBS_WORK, 0.8), "life": Zipf(r, VERBS_LIFE, 0.8)}
        self._az = {"work": Zipf(r, ADJ_COMMON + ADJ_WORK, 0.8),
                    "life": Zipf(r, ADJ_COMMON + ADJ_LIFE, 0.8)}
        self.advs = Zipf(r, ADVERBS, 0.8)
        self.techs = Zipf(r, TECH, 0.9)
        self.projects = Zipf(r, PROJECTS, 1.0)
        self.cities = Zipf(r, CITIES, 0.9)
        self.places = Zipf(r, LOCAL_PLACES, 0.8)
        self.orgs = Zipf(r, ORGS, 0.9)
        self.foods = Zipf(r, FOODS, 0.8)
        self.family = Zipf(r, FAMILY, 1.0)
        self.tprefix = Zipf(r, TICKET_PREFIXES, 1.2)
        self.pers = Zipf(r, PERSONAL_PROJECTS, 0.8)
        self.past = {v: _past(v) for v in _uniq(VERBS)}
        self.ing = {v: _ing(v) for v in _uniq(VERBS)}
        self.plural = {n: _plural(n) for n in _uniq(NOUNS)}
        self.t_work = Zipf(r, [_compile(t) for t in _lines(T_WORK)], 0.4)
        self.t_life = Zipf(r, [_compile(t) for t in _lines(T_LIFE)], 0.4)
        self.t_note = Zipf(r, [_compile(t) for t in _lines(T_NOTE)], 0.4)
        self.t_todo = Zipf(r, [_compile(t) for t in _lines(T_TODO)], 0.4)
        self.t_clause = Zipf(r, [_compile(t) for t in _lines(T_CLAUSE)], 0.4)
        self.t_short = Zipf(r, [_compile(t) for t in _lines(T_SHORT)], 0.4)
        self.activities = Zipf(r, [_compile(t) for t in ACTIVITIES], 0.6)
        self.eateries = Zipf(r, EATERIES, 0.8)
        self.mode = ""
        self.slots = {
            "P": self.person, "F": self.first, "PR": self.project, "PL": self.place,
            "CITY": self.cities, "V": None, "VD": self.verb_past, "VG": self.verb_ing,
            "N": None, "NS": self.noun_pl, "A": None, "AV": self.advs,
            "OBJ": self.obj, "T": self.time, "WHEN": self.when, "DAY": self.day,
            "NUM": self.num, "BIG": self.big, "PCT": self.pct, "MONEY": self.money,
            "DUR": self.dur, "TK": self.ticket, "VER": self.version, "EM": self.email,
            "URL": self.url, "SHA": self.sha, "TECH": self.techs, "FOOD": self.foods,
            "ACT": self.act, "ORG": self.orgs, "MON": self.month, "TOPIC": self.topic,
            "FAM": self.family, "W": self.weather, "ROOM": self.room, "TRADE": self.trade,
            "ORD": self.ordinal, "CH": self.channel, "PATH": self.path,
            "EAT": self.eateries, "MEDIA": self.media, "SCHOOL": self.school,
            "MEET": self.meeting, "BOOK": self.book,
        }
        self.set_mode("work")

    def set_mode(self, mode: str) -> None:
        """Pick the noun/verb/adjective pools: "work" or "life"."""
        if mode != self.mode:
            self.mode = mode
            self.nouns = self.slots["N"] = self._nz[mode]
            self.verbs = self.slots["V"] = self._vz[mode]
            self.adjs = self.slots["A"] = self._az[mode]

    # ---- slot fillers -------------------------------------------------------
    def person(self):
        f = self.first()
        return f + " " + self.full[f] if self.rng.random() < 0.25 else f

    def project(self):
        return self.pers() if self.rng.random() < 0.15 else self.projects()

    def place(self):
        return self.places() if self.rng.random() < 0.7 else self.cities()

    def verb_past(self):
        return self.past[self.verbs()]

    def verb_ing(self):
        return self.ing[self.verbs()]

    def noun_pl(self):
        return self.plural[self.nouns()]

    def obj(self):
        x = self.rng.random()
        if x < 0.35:
            return self.adjs() + " " + self.nouns()
        if x < 0.55:
            return self.techs() + " " + self.nouns()
        if x < 0.7:
            return self.nouns() + " for " + self.projects()
        if x < 0.8:
            return self.projects() + " " + self.nouns()
        return self.nouns()

    def time(self):
        r = self.rng
        h = r.randint(7, 21)
        m = r.choice((0, 0, 0, 15, 30, 30, 45, 10, 50))
        return f"{h}:{m:02d}" if r.random() < 0.8 else (f"{h % 12 or 12}{'am' if h < 12 else 'pm'}")

    def when(self):
        r = self.rng
        x = r.random()
        if x < 0.25:
            return r.choice(("tomorrow", "today", "tonight", "this week", "next week",
                             "by end of week", "after lunch", "before lunch", "this afternoon",
                             "later", "soon", "next month", "after the holidays"))
        if x < 0.55:
            return r.choice(("on ", "by ", "next ", "before ")) + r.choice(WEEKDAYS)
        if x < 0.8:
            return "by the " + self.ordinal()
        return "before " + r.choice(MONTHS)

    def day(self):
        return self.rng.choice(WEEKDAYS)

    def num(self):
        return str(int(self.rng.paretovariate(1.3)) + 1)

    def big(self):
        return f"{int(self.rng.paretovariate(0.9) * 40):,}"

    def pct(self):
        return f"{self.rng.randint(1, 99)}%"

    def money(self):
        r = self.rng
        cur = r.choice(("£", "£", "€", "$"))
        v = int(r.paretovariate(1.1) * 15)
        return f"{cur}{v:,}"

    def dur(self):
        r = self.rng
        if r.random() < 0.6:
            return f"{r.choice((5, 10, 15, 20, 25, 30, 40, 45, 90))} min"
        n = r.randint(1, 6)
        return f"{n} hour" + ("s" if n > 1 else "")

    def ticket(self):
        return f"{self.tprefix()}-{self.rng.randint(100, 9999)}"

    def version(self):
        r = self.rng
        return f"v{r.randint(0, 4)}.{r.randint(0, 24)}.{r.randint(0, 15)}"

    def email(self):
        f = self.first()
        return f"{f.lower()}.{self.full[f].lower()}@{self.dom[f]}"

    def url(self):
        r = self.rng
        host = r.choice(("https://github.com/", "https://docs.", "https://wiki.internal/",
                         "https://news.ycombinator.com/item?id=", "https://blog.", "https://"))
        if host.endswith("="):
            return host + str(r.randint(30000000, 45000000))
        if host.endswith("github.com/"):
            return host + self.orgs().lower() + "/" + self.techs().replace(".", "-")
        if host.endswith("."):
            return host + self.techs().replace(".", "") + ".io/" + self.nouns()
        if host.endswith("internal/"):
            return host + self.projects().lower() + "/" + self.nouns()
        return host + self.orgs().lower() + ".com/" + self.nouns() + "-" + self.nouns()

    def sha(self):
        return "%07x" % self.rng.getrandbits(28)

    def act(self):
        return self.fill(self.activities())

    def month(self):
        return self.rng.choice(MONTHS)

    def topic(self):
        x = self.rng.random()
        if x < 0.3:
            return self.pers()
        if x < 0.5:
            return "the trip to " + self.cities()
        if x < 0.7:
            return self.plural[self.nouns()]
        return "the " + self.adjs() + " " + self.nouns()

    def media(self):
        return self.rng.choice(("book", "podcast", "article", "documentary", "film", "essay",
                                "episode", "talk", "paper"))

    def school(self):
        return self.rng.choice(("sports day", "a book fair", "parents' evening", "a trip",
                                "swimming", "a science fair", "a concert", "an inset day"))

    def meeting(self):
        return self.rng.choice(MEETINGS)

    def book(self):
        return self.rng.choice(BOOK_TITLES)

    def weather(self):
        return self.rng.choice(WEATHER)

    def room(self):
        return self.rng.choice(("kitchen", "bathroom", "hallway", "loft", "garage",
                                "spare room", "bedroom", "living room"))

    def trade(self):
        return self.rng.choice(("plumber", "electrician", "landlord", "builder", "roofer"))

    def ordinal(self):
        d = self.rng.randint(1, 28)
        suf = "th" if 10 <= d <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
        return f"{d}{suf}"

    def channel(self):
        return self.rng.choice(("eng", "team-" + self.projects().lower(), "incidents",
                                "random", "design", "ops", "data"))

    def path(self):
        return "`" + self.rng.choice(("config/", "src/", "deploy/", "~/.config/", "infra/")) + \
            self.nouns() + self.rng.choice((".yaml", ".toml", ".py", ".json", ".sql", "/")) + "`"

    # ---- composition --------------------------------------------------------
    def fill(self, parts) -> str:
        slots = self.slots
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(slots[parts[i]]())
            out.append(parts[i + 1])
        return _AN_RE.sub(r"\1n ", "".join(out))

    def sentence(self, kind: str = "mix") -> str:
        r = self.rng.random()
        if kind == "work" or (kind == "mix" and r < 0.45):
            self.set_mode("work")
            s = self.fill(self.t_work())
        elif kind == "life" or (kind == "mix" and r < 0.8):
            self.set_mode("life")
            s = self.fill(self.t_life())
        else:
            self.set_mode("work" if r < 0.93 else "life")
            s = self.fill(self.t_note())
        return s[0].upper() + s[1:]

    def clause(self) -> str:
        return self.fill(self.t_clause())

    def item(self, target: int, kind: str = "mix") -> str:
        """One bullet/sentence of roughly `target` words (5-30)."""
        if target < 8:
            s = self.fill(self.t_short())
            return s[0].upper() + s[1:]
        s = self.sentence(kind)
        n = s.count(" ") + 1
        r = self.rng
        while n < target - 2:
            c = self.clause()
            j = r.random()
            if s.endswith("."):
                s = s[:-1]
            if j < 0.4:
                s = s + ", " + c + "."
            elif j < 0.6:
                s = s + "; " + c + "."
            elif j < 0.8:
                s = s + " (" + c + ")."
            else:
                t = self.sentence(kind)
                s = s + ". " + t
            n = s.count(" ") + 1
        return s

    def todo(self) -> str:
        s = self.fill(self.t_todo())
        s = s[0].upper() + s[1:]
        if self.rng.random() < 0.3:
            s += ", " + self.clause()
        return s

    def item_len(self) -> int:
        # 5-30 words, mostly 8-18
        return min(30, max(5, int(self.rng.gauss(13, 5))))

    def paragraph(self, sentences: int, kind: str = "mix") -> str:
        return " ".join(self.item(self.rng.randint(8, 20), kind) for _ in range(sentences))

    def wrap(self, text: str, width: int = 80) -> list[str]:
        out, cur, n = [], [], 0
        for w in text.split(" "):
            if cur and n + 1 + len(w) > width:
                out.append(" ".join(cur))
                cur, n = [w], len(w)
            else:
                cur.append(w)
                n += len(w) + (1 if len(cur) > 1 else 0)
        if cur:
            out.append(" ".join(cur))
        return out

    def heading_text(self, kind: str, used: list) -> str:
        r = self.rng
        pool = NOTE_HEADINGS.get(kind, NOTE_HEADINGS["notes"])
        if r.random() < 0.55:
            for _ in range(4):
                h = r.choice(pool)
                if h not in used:
                    used.append(h)
                    return h
        x = r.random()
        if x < 0.25:
            h = (self.adjs() + " " + self.nouns()).capitalize()
        elif x < 0.4:
            h = f"{self.techs()} {self.nouns()}"
        elif x < 0.55:
            h = f"{self.date_str()} sync with {self.first()}"
        elif x < 0.65:
            h = f"Phase {r.randint(1, 5)}: {self.nouns()}"
        elif x < 0.75:
            h = f"Why {self.adjs()} {self.plural[self.nouns()]}?"
        elif x < 0.85:
            h = f"{self.ticket()} {self.nouns()}"
        else:
            h = (self.verbs() + " the " + self.nouns()).capitalize()
        used.append(h)
        return h

    def date_str(self) -> str:
        d = _dt.date(2024, 1, 1) + _dt.timedelta(days=self.rng.randint(0, 1050))
        return d.isoformat()

    # ---- blocks (each returns a list of lines, no trailing blank) ----------
    def bullets(self, n: int, kind: str = "mix", nested: float = 0.0) -> list[str]:
        r = self.rng
        out = []
        for _ in range(n):
            out.append("- " + self.item(self.item_len(), kind))
            if nested and r.random() < nested:
                for _ in range(r.randint(1, 3)):
                    out.append("  - " + self.item(r.randint(5, 14), kind))
                    if r.random() < 0.15:
                        out.append("    - " + self.item(r.randint(5, 10), kind))
        return out

    def numbered(self, n: int, kind: str = "mix") -> list[str]:
        return [f"{i}. " + self.item(self.item_len(), kind) for i in range(1, n + 1)]

    def tasks(self, n: int) -> list[str]:
        r = self.rng
        out = []
        for _ in range(n):
            self.set_mode("work" if r.random() < 0.5 else "life")
            out.append(("- [x] " if r.random() < 0.35 else "- [ ] ") + self.todo())
        return out

    def table(self, rows: int) -> list[str]:
        r = self.rng
        shape = r.randint(0, 3)
        if shape == 0:
            head = ["Date", "Item", "Owner", "Status"]
            body = [[self.date_str(), self.obj(), self.first(),
                     r.choice(("done", "open", "blocked", "in progress", "dropped"))]
                    for _ in range(rows)]
        elif shape == 1:
            head = ["Name", "Role", "Email", "Notes"]
            body = []
            for _ in range(rows):
                f = self.first()
                body.append([f + " " + self.full[f], self.nouns() + " lead",
                             f"{f.lower()}.{self.full[f].lower()}@{self.dom[f]}",
                             self.clause()])
        elif shape == 2:
            head = ["Service", "Version", "Owner", "SLO"]
            body = [[self.techs(), self.version(), self.first(), f"99.{r.randint(0, 99):02d}%"]
                    for _ in range(rows)]
        else:
            head = ["What", "Cost", "When", "Notes"]
            body = [[self.nouns().capitalize(), self.money(), r.choice(MONTHS), self.clause()]
                    for _ in range(rows)]
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in body]
        return out

    def code(self) -> list[str]:
        r = self.rng
        lang = r.choice(LANGS)
        n = r.randint(3, 12)
        lines = []
        if lang in ("bash", "sh"):
            cmds = [
                lambda: f"kubectl -n {self.projects().lower()} rollout restart deploy/{self.nouns()}",
                lambda: f"psql -h db-{r.randint(1, 9)}.internal -c \"select count(*) from {self.plural[self.nouns()]};\"",
                lambda: f"git log --oneline {self.sha()}..HEAD -- src/{self.nouns()}",
                lambda: f"rg -n '{self.nouns()}' src/ | head -{r.randint(5, 50)}",
                lambda: f"docker compose up -d {self.techs().replace('.', '')}",
                lambda: f"terraform plan -target=module.{self.nouns()}",
                lambda: f"curl -s https://api.{self.orgs().lower()}.com/v{r.randint(1, 3)}/{self.plural[self.nouns()]} | jq '.items | length'",
                lambda: f"# {self.clause()}",
                lambda: f"export {self.nouns().upper()}_{self.nouns().upper()}={r.randint(1, 500)}",
                lambda: f"make {self.verbs()} && ./scripts/{self.verbs()}-{self.nouns()}.sh",
            ]
            lines = [r.choice(cmds)() for _ in range(n)]
        elif lang == "python":
            fn, arg = self.verbs() + "_" + self.nouns(), self.nouns()
            lines = [f"def {fn}({arg}, *, limit={r.randint(1, 100)}):",
                     f'    """{self.clause().capitalize()}."""']
            for _ in range(n - 3):
                lines.append(r.choice((
                    f"    {self.nouns()} = {arg}.get('{self.nouns()}', {r.randint(0, 9)})",
                    f"    if not {arg}:",
                    "        return None",
                    f"    # {self.clause()}",
                    f"    log.info('{self.verbs()} %s', {arg})",
                    f"    {self.plural[self.nouns()]}.append({arg})",
                )))
            lines.append(f"    return {arg}")
        elif lang in ("yaml", "toml"):
            sep = ": " if lang == "yaml" else " = "
            for _ in range(n):
                k = self.nouns()
                v = r.choice((str(r.randint(1, 900)), "true", "false",
                              f'"{self.techs()}"', f'"{self.version()}"'))
                lines.append(f"{k}{sep}{v}")
        elif lang == "sql":
            t = self.plural[self.nouns()]
            lines = [f"select {self.nouns()}_id, count(*) as n",
                     f"from {t}",
                     f"where created_at >= '{self.date_str()}'",
                     f"  and {self.nouns()} = '{self.adjs()}'",
                     "group by 1",
                     "order by n desc",
                     f"limit {r.randint(5, 100)};"]
        elif lang == "json":
            items = [f'  "{self.nouns()}": {r.randint(0, 5000)}' for _ in range(n - 2)]
            lines = ["{", ",\n".join(items), "}"]
            lines = "\n".join(lines).split("\n")
        else:
            start = _dt.datetime(2026, 1, 1) + _dt.timedelta(seconds=r.randint(0, 27_000_000))
            for _ in range(n):
                start += _dt.timedelta(seconds=r.randint(1, 400))
                lines.append(f"{start.isoformat()}Z {r.choice(('INFO', 'INFO', 'WARN', 'ERROR'))} "
                             f"{self.nouns()}-{r.randint(1, 12)} {self.clause()}")
        return ["```" + lang] + lines + ["```"]

    def quote(self) -> list[str]:
        return ["> " + line for line in self.wrap(self.paragraph(self.rng.randint(1, 3)), 76)]

    def block(self, kind: str, code_p: float) -> list[str]:
        r = self.rng
        x = r.random()
        tk = {"project": "work", "learning": "work", "people": "life", "travel": "life",
              "recipes": "life", "areas": "life"}.get(kind, "mix")
        self.set_mode("life" if tk == "life" else "work")
        if x < code_p:
            return self.code()
        x = r.random()
        if x < 0.40:
            p = self.paragraph(r.randint(2, 5), tk)
            return self.wrap(p) if r.random() < 0.25 else [p]
        if x < 0.68:
            return self.bullets(r.randint(2, 7), tk)
        if x < 0.80:
            return self.bullets(r.randint(2, 5), tk, nested=0.5)
        if x < 0.87:
            return self.numbered(r.randint(3, 7), tk)
        if x < 0.93:
            return self.table(r.randint(2, 8))
        if x < 0.96:
            return self.quote()
        return self.tasks(r.randint(2, 6))


# --------------------------------------------------------------------------
# File generators
# --------------------------------------------------------------------------


def _soul(g: Gen, owner: str) -> str:
    r = g.rng
    name = r.choice(("Wren", "Juniper", "Ash", "Sage", "Robin", "Pip", "Lark"))
    L = [f"# {name}", "",
         f"I am {name}, {owner}'s personal assistant. I keep track of the small things so "
         f"{owner} does not have to, and I remember what was said last week.", "",
         "## Voice", ""]
    L += [f"- {x}" for x in (
        "Plain, warm and brief. No exclamation marks, no corporate filler.",
        "British spelling. Dates as YYYY-MM-DD, times in 24-hour format.",
        f"Lead with the answer, then the reason. {owner} reads on a phone most of the time.",
        "When unsure, say so and say what would settle it.",
        "Light humour is fine; sarcasm is not.",
    )]
    L += ["", "## Values", ""]
    L += [f"- {x}" for x in (
        f"{owner}'s time and attention are the scarce resources.",
        "Privacy first: nothing leaves this machine without asking.",
        "Be honest about mistakes and fix the memory when a fact changes.",
        "Prefer small reversible steps over big clever ones.",
    )]
    L += ["", "## Boundaries", ""]
    L += [f"- {x}" for x in (
        "Never send email or messages on my own; draft them and wait.",
        "No purchases, bookings or payments without an explicit yes.",
        f"Health notes are for {owner} only, never for summaries shared with others.",
        f"Do not contact {g.first()} or {g.first()} directly about work matters.",
    )]
    L += ["", "## How I work", ""]
    L += [f"- {g.item(g.item_len(), 'note')}" for _ in range(6)]
    L += ["", "## Memory rules", ""]
    L += [f"- {x}" for x in (
        "Long-term facts go in MEMORY.md under the right heading.",
        "Day-to-day detail goes in daily/ as one file per day.",
        "Project detail lives in projects/, people in people/.",
        "Review MEMORY.md once a month and prune what is no longer true.",
    )]
    L += ["", "## Current focus", "", g.paragraph(2, "work"), ""]
    return "\n".join(L)


def _memory(g: Gen, owner: str) -> str:
    r = g.rng
    target = r.randint(2000, 3000)
    L = [f"# {owner} — long-term memory", "",
         *g.wrap(f"Curated facts that should still be true next year. Day-to-day detail lives "
                 f"in daily/; project detail lives in projects/. Last full review: "
                 f"{g.date_str()}."), ""]

    def sec(title, level=2):
        L.extend(["#" * level + " " + title, ""])

    def body(lines):
        L.extend(lines)
        L.append("")

    sec("Identity")
    body([f"- {owner} {g.full[owner]}, born {r.randint(1975, 1995)}-{r.randint(1, 12):02d}-"
          f"{r.randint(1, 28):02d} in {g.cities()}.",
          f"- Lives in {g.cities()} since {r.choice(MONTHS)} {r.randint(2012, 2022)}.",
          f"- Works at {g.orgs()} as a {g.adjs()} {g.nouns()} lead.",
          f"- Email: {owner.lower()}.{g.full[owner].lower()}@{g.dom[owner]}"]
         + g.bullets(r.randint(3, 6), "life"))

    # People: one ### per frequent person.
    sec("People")
    cast = [f for f in g.first.items[:60] if f != owner][:r.randint(25, 40)]
    for f in cast:
        sec(f"{f} {g.full[f]}", 3)
        b = [f"- Role: {g.adjs()} {g.nouns()} at {g.orgs()}; {g.clause()}.",
             f"- Email: {f.lower()}.{g.full[f].lower()}@{g.dom[f]}",
             f"- Birthday: {r.randint(1, 28)} {r.choice(MONTHS)}."]
        b += g.bullets(r.randint(2, 7), "life", nested=0.1)
        body(b)

    sec("Projects")
    for p in g.projects.items[:r.randint(15, 25)]:
        sec(p, 3)
        b = [f"- Status: {r.choice(('active', 'paused', 'shipped', 'planning', 'at risk'))}; "
             f"owner {g.first()}, repo `{g.orgs().lower()}/{p.lower()}`."]
        b += g.bullets(r.randint(3, 9), "work", nested=0.15)
        body(b)
        if r.random() < 0.3:
            body(g.table(r.randint(3, 6)))
        if r.random() < 0.2:
            body(g.code())

    sec("Preferences")
    for t in ("Editor", "Terminal and shell", "Food and drink", "Working style",
              "Travel", "Gifts and shopping", "Music", "Reading"):
        sec(t, 3)
        body(g.bullets(r.randint(3, 8), "life"))
        if t == "Terminal and shell":
            body(g.code())

    # One or two long sections (100+ lines) that a chunker must split.
    sec("Decisions log")
    base = _dt.date(2023, 1, 5)
    dl = []
    for i in range(r.randint(110, 160)):
        d = base + _dt.timedelta(days=i * 6 + r.randint(0, 5))
        dl.append(f"- {d.isoformat()}: {g.item(g.item_len(), 'note')}")
    body(dl)
    if r.random() < 0.8:
        sec("Travel history")
        body([f"- {r.choice(MONTHS)} {r.randint(2012, 2026)}: {g.cities()}, "
              f"{g.item(r.randint(6, 16), 'life')}" for _ in range(r.randint(100, 130))])

    sec("Subscriptions and accounts")
    body(g.table(r.randint(8, 15)))

    # Fill up with further topical sections until the target length.
    topics = ["Home", "Health", "Money", "Car and bikes", "Garden", "Kids and school",
              "Friends", "Work history", "Tools and setup", "Recurring events", "Learning",
              "Recipes", "Routines", "Open loops", "Things to remember"]
    ti = 0
    while len(L) < target:
        topic = topics[ti % len(topics)]
        ti += 1
        sec(topic if ti <= len(topics) else f"{topic} ({ti // len(topics) + 1})")
        for _ in range(r.randint(2, 6)):
            if len(L) >= target:
                break
            sec(g.heading_text("areas", []), 3)
            body(g.bullets(r.randint(2, 8), "mix", nested=0.15))
            y = r.random()
            if y < 0.12:
                body(g.table(r.randint(3, 7)))
            elif y < 0.2:
                body(g.code())
            elif y < 0.35:
                body([g.paragraph(r.randint(2, 4))])
    return "\n".join(L)


def _cap(L: list[str], limit: int) -> list[str]:
    """Cut `L` to at most `limit` lines at a blank line outside code fences
    that does not directly follow a heading (so no section is left empty)."""
    if len(L) <= limit:
        return L
    fence, cut = False, 0
    for i, line in enumerate(L[:limit + 1]):
        if line.startswith("```"):
            fence = not fence
        elif not line and not fence and i and L[i - 1] and not L[i - 1].startswith("#"):
            cut = i
    return L[:cut] if cut else L[:limit]


def _daily(g: Gen, day: _dt.date) -> str:
    r = g.rng
    L = []
    if r.random() < 0.10:
        L += ["---", f"mood: {r.choice(MOODS)}",
              f"tags: [{', '.join(r.sample(TAGS, r.randint(1, 3)))}]"]
        if r.random() < 0.5:
            L.append(f"energy: {r.randint(1, 5)}")
        if r.random() < 0.4:
            L.append(f"weather: {r.choice(WEATHER)}")
        L += ["---", ""]
    if r.random() < 0.9:
        L += [f"# {day.isoformat()} {WEEKDAYS[day.weekday()]}", ""]
        if r.random() < 0.35:
            # One-line summary of the day under the title.
            L += [g.item(r.randint(8, 20)), ""]
    weekend = day.weekday() >= 5

    if r.random() < 0.08:
        # No headings: a loose list with the odd paragraph.
        target = r.randint(20, 45)
        while len(L) < target:
            if r.random() < 0.2:
                L += [g.paragraph(r.randint(2, 4)), ""]
            else:
                L += g.bullets(r.randint(3, 8), "mix", nested=0.1) + [""]
        return "\n".join(_cap(L, 80))

    target = int(r.triangular(22, 81, 56))
    kmax = max(3, min(8, (target - len(L)) // 5))
    k = min(kmax, round(r.triangular(3, 8.49, 8.49)))
    pool = [h for h in HEADINGS_DAILY if not (weekend and h in WORK_HEADINGS and r.random() < 0.8)]
    heads = sorted(r.sample(pool, min(k, len(pool))), key=HEADINGS_DAILY.index)
    budget = max(2 * k, int((target - len(L) - 3 * k) * 0.9))
    weights = [r.random() + 0.5 for _ in heads]
    tw = sum(weights)
    for h, w in zip(heads, weights, strict=True):
        n = max(2, round(budget * w / tw))
        L += [f"## {h}", ""]
        if h in ("Todo", "Tomorrow"):
            L += g.tasks(n)
        elif h == "Meetings" and n >= 3 and r.random() < 0.6:
            # One ### per meeting, a few bullets each.
            times = sorted(r.sample(range(9 * 4, 18 * 4), r.randint(2, 3)))
            for t in times:
                L += [f"### {t // 4}:{t % 4 * 15:02d} {r.choice(MEETINGS)} with {g.first()}", ""]
                L += g.bullets(max(2, n // len(times)), "work", nested=0.1) + [""]
            L.pop()
        elif h == "Meetings":
            for t in sorted(r.sample(range(8 * 4, 19 * 4), n)):
                L.append(f"- {t // 4}:{t % 4 * 15:02d} {r.choice(MEETINGS)} with {g.first()}: "
                         f"{g.item(g.item_len() - 4, 'work')}")
        elif h == "Links":
            L += [f"- {g.url()} — {g.clause()}" for _ in range(n)]
        elif h == "Health":
            L += [f"- {g.act()}" if r.random() < 0.4 else "- " + g.item(g.item_len(), "life")
                  for _ in range(n)]
        elif h in ("Notes", "Evening", "Learned") and r.random() < 0.3:
            for _ in range(max(1, n // 3)):
                L += [g.paragraph(r.randint(2, 4), "mix"), ""]
            L.pop()
        else:
            kind = "work" if h in WORK_HEADINGS else ("note" if h in ("Ideas", "Learned") else "life")
            L += g.bullets(n, kind, nested=0.08)
        L.append("")
    return "\n".join(_cap(L, 80))


_FOLDER_TOPS = {
    "projects": "project", "people": "people", "notes": "notes", "reading": "reading",
    "travel": "travel", "recipes": "recipes", "learning": "learning", "areas": "areas",
}


def _folder_pool(g: Gen) -> list[str]:
    r = g.rng
    pool = []
    for p in g.projects.items[:18]:
        s = p.lower()
        pool.append(f"projects/{s}")
        for sub in ("meetings", "design", "research", "incidents"):
            if r.random() < 0.5:
                pool.append(f"projects/{s}/{sub}")
    for grp in ("work", "family", "friends", "neighbours", "mentors"):
        pool.append(f"people/{grp}")
    for team in ("platform", "data", "design", "leadership"):
        pool.append(f"people/work/{team}")
    for y, months in ((2024, range(6, 13)), (2025, range(1, 13)), (2026, range(1, 12))):
        for m in months:
            pool.append(f"notes/{y}/{m:02d}")
    for sub in ("books", "papers", "articles", "podcasts"):
        pool.append(f"reading/{sub}")
    pool.append("reading/books/fiction")
    pool.append("reading/books/non-fiction")
    for y in (2024, 2025, 2026):
        for c in g.cities.items[:40][(y - 2024) * 5:(y - 2024) * 5 + 5]:
            pool.append(f"travel/{y}/{c.lower()}")
    for c in ("italian", "japanese", "baking", "weeknight", "indian", "soups"):
        pool.append(f"recipes/{c}")
    for t in g.techs.items[:12]:
        pool.append(f"learning/{t.replace('.', '-')}")
    for a in ("health/physio", "health/running", "finance/taxes", "finance/pension",
              "home/garden", "home/repairs", "home/energy", "car", "admin", "kids/school"):
        pool.append(f"areas/{a}")
    return _uniq(pool)


def _pick_folders(g: Gen, n_notes: int) -> list[str]:
    """Choose leaf folders until ~0.4 folders per note (about 100 for 250 notes)."""
    r = g.rng
    pool = _folder_pool(g)
    r.shuffle(pool)
    want = max(1, round(n_notes * 0.4))
    chosen, seen = [], {}
    for f in pool:
        parts = f.split("/")
        new = [("/".join(parts[:i])) for i in range(1, len(parts) + 1)]
        chosen.append(f)
        for d in new:
            seen[d] = True
        if len(seen) >= want:
            break
    return chosen


def _note_title(g: Gen, folder: str, kind: str) -> str:
    r = g.rng
    parts = folder.split("/")
    if kind == "project":
        p = parts[1].capitalize()
        sub = parts[2] if len(parts) > 2 else ""
        if sub == "meetings":
            return f"{p} {r.choice(MEETINGS)} {g.date_str()}"
        if sub == "incidents":
            return f"{p} incident {g.ticket()}: {g.adjs()} {g.nouns()}"
        return f"{p} — {r.choice(('design doc', 'spec', 'roadmap', 'runbook', 'retro', 'research', 'onboarding', 'proposal', 'status'))}: {g.nouns()}"
    if kind == "people":
        f = g.first()
        return f"{f} {g.full[f]}"
    if kind == "reading":
        return r.choice(BOOK_TITLES) if r.random() < 0.5 else \
            f"Notes on {g.adjs()} {g.plural[g.nouns()]} ({g.orgs()} {parts[-1]})"
    if kind == "travel":
        return f"{parts[-1].capitalize()} {r.choice(('trip', 'weekend', 'conference', 'visit'))} {parts[1]}"
    if kind == "recipes":
        return f"{g.foods().capitalize()} ({parts[-1]})"
    if kind == "learning":
        return f"{parts[-1]} {r.choice(('cheatsheet', 'notes', 'deep dive', 'gotchas', 'setup'))}"
    if kind == "areas":
        return f"{parts[-1].capitalize()}: {g.adjs()} {g.nouns()}"
    return (g.adjs() + " " + g.nouns() + " " + r.choice(("ideas", "notes", "thoughts", "plan", "log", "questions"))).capitalize()


def _note(g: Gen, kind: str, title: str) -> str:
    r = g.rng
    target = int(r.triangular(30, 201, 200))
    code_p = {"project": 0.12, "learning": 0.3}.get(kind, 0.03)
    L = [f"# {title}", ""]
    if r.random() < 0.7:
        L += g.wrap(g.paragraph(r.randint(1, 3))) + [""]
    used: list = []
    while len(L) < target:
        L += ["## " + g.heading_text(kind, used), ""]
        if r.random() < 0.55:
            if r.random() < 0.8:
                L += [g.paragraph(r.randint(1, 3), "mix"), ""]
            for _ in range(r.randint(2, 4)):
                if len(L) >= target:
                    break
                L += ["### " + g.heading_text(kind, used), ""]
                for _ in range(r.randint(1, 2)):
                    L += g.block(kind, code_p) + [""]
                if r.random() < 0.3:
                    L += ["#### " + g.heading_text(kind, used), ""]
                    L += g.block(kind, code_p) + [""]
        else:
            for _ in range(r.randint(1, 2)):
                L += g.block(kind, code_p) + [""]
    return "\n".join(_cap(L, 200))


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def generate_memory(root: Path, *, files: int = 1000, seed: int = 0) -> dict:
    """Write a synthetic memory folder of `files` Markdown files under `root`.

    Existing files with the same names are overwritten; nothing is deleted.
    Returns {"files": n, "lines": n, "bytes": n} for what was written.
    """
    root = Path(root)
    rng = random.Random(seed)
    g = Gen(rng)
    owner = g.first.items[0]
    docs: list[tuple[str, str]] = []

    n = max(0, int(files))
    if n >= 1:
        docs.append(("SOUL.md", _soul(g, owner)))
    if n >= 2:
        docs.append(("MEMORY.md", _memory(g, owner)))
    rest = max(0, n - 2)
    n_daily = round(rest * 0.75)
    n_notes = rest - n_daily

    day = _dt.date(2026, 11, 20)
    for _ in range(n_daily):
        docs.append((f"daily/{day.isoformat()}.md", _daily(g, day)))
        day -= _dt.timedelta(days=1 + (rng.randint(1, 3) if rng.random() < 0.15 else 0))

    if n_notes:
        folders = _pick_folders(g, n_notes)
        fz = Zipf(rng, folders, 0.6)
        assign = folders[:n_notes] + [fz() for _ in range(n_notes - len(folders))]
        taken: dict[str, bool] = {}
        for folder in assign:
            kind = _FOLDER_TOPS[folder.split("/")[0]]
            title = _note_title(g, folder, kind)
            base = f"{folder}/{_slug(title)}"
            name, i = base + ".md", 2
            while name in taken:
                name, i = f"{base}-{i}.md", i + 1
            taken[name] = True
            docs.append((name, _note(g, kind, title)))

    total_lines = total_bytes = 0
    made: dict[Path, bool] = {}
    for rel, text in docs:
        if not text.endswith("\n"):
            text += "\n"
        data = text.encode("utf-8")
        p = root / rel
        if p.parent not in made:
            p.parent.mkdir(parents=True, exist_ok=True)
            made[p.parent] = True
        p.write_bytes(data)
        total_lines += data.count(b"\n")
        total_bytes += len(data)
    return {"files": len(docs), "lines": total_lines, "bytes": total_bytes}


_WORD_RE = re.compile(r"[A-Za-z]{3,}")
_REPLACEMENTS = _uniq(NOUNS + ADJECTIVES + VERBS)


def edit_one_line(path: Path, rng) -> None:
    """Change one word on one line near the middle of `path`, in place.

    Picks a content line (not blank, not a heading, not a fence/frontmatter/table
    rule; renaming a heading rightly re-embeds every subsection under it) from the
    middle half of the file, replaces one of its words (3+ letters) with a
    different word, keeping case. Line count and line endings are preserved.
    `rng` is a random.Random (or anything with randrange/choice).
    """
    path = Path(path)
    data = path.read_bytes().decode("utf-8")
    lines = data.splitlines(keepends=True)
    if not lines:
        raise ValueError(f"{path}: empty file, nothing to edit")

    def ok(i: int) -> bool:
        s = lines[i].strip()
        return bool(s) and not s.startswith(("```", "---", "|---", "#")) and bool(_WORD_RE.search(s))

    n = len(lines)
    mid = [i for i in range(n // 4, max(n // 4 + 1, (3 * n) // 4)) if ok(i)]
    cands = mid or [i for i in range(n) if ok(i)]
    if not cands:
        raise ValueError(f"{path}: no line with a word to edit")
    i = cands[rng.randrange(len(cands))]
    line = lines[i]
    matches = list(_WORD_RE.finditer(line))
    m = matches[rng.randrange(len(matches))]
    old = m.group(0)
    new = old
    while new.lower() == old.lower():
        new = _REPLACEMENTS[rng.randrange(len(_REPLACEMENTS))]
    if old.isupper():
        new = new.upper()
    elif old[0].isupper():
        new = new.capitalize()
    lines[i] = line[:m.start()] + new + line[m.end():]
    path.write_bytes("".join(lines).encode("utf-8"))


def append_line(path: Path, text: str) -> None:
    """Append `text` as one new line at the end of `path` (created if missing)."""
    path = Path(path)
    line = text.rstrip("\r\n")
    prefix = b""
    if path.exists():
        size = path.stat().st_size
        if size:
            with path.open("rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    prefix = b"\n"
    with path.open("ab") as fh:
        fh.write(prefix + line.encode("utf-8") + b"\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate a synthetic assistant memory folder.")
    ap.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    ap.add_argument("--files", type=int, default=1000, help="number of Markdown files (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--force", action="store_true", help="write into a non-empty OUT_DIR")
    a = ap.parse_args(argv)
    out: Path = a.out_dir
    if out.exists() and not out.is_dir():
        print(f"error: {out} exists and is not a directory", file=sys.stderr)
        return 2
    if out.is_dir() and any(out.iterdir()) and not a.force:
        print(f"error: {out} is not empty (use --force to write into it)", file=sys.stderr)
        return 2
    if a.files < 0:
        print("error: --files must be >= 0", file=sys.stderr)
        return 2
    stats = generate_memory(out, files=a.files, seed=a.seed)
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
