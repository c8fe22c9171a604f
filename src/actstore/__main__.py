"""``python -m actstore`` runs the command line."""

from actstore.cli import main

raise SystemExit(main())
