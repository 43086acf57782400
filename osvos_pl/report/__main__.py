"""Entry point of ``python -m osvos_pl.report``."""

from osvos_pl.report.cli import main

raise SystemExit(main())
