from stylebridge.apps.cli import main

raise SystemExit(main())
