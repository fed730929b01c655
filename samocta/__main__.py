"""``python -m samocta``: see ``samocta.cli``."""

from samocta.cli import main

raise SystemExit(main())
