"""``python -m waldo_cli`` runs the ``waldo`` command."""

from waldo_cli.cli import main

if __name__ == "__main__":
    main()
