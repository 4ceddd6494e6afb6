from indexer.cli.app import main

main()
