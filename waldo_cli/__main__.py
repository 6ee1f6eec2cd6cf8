"""``python -m waldo_cli`` runs the ``waldo`` command (through the server, as the script does)."""

from waldo_cli.client import main

if __name__ == "__main__":
    main()
