"""``python -m convscope_client``: the ``convscope-client`` command."""

from .cli import main

raise SystemExit(main())
