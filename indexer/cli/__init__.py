"""The ``memdex`` command: parses arguments, calls the library, prints results."""
