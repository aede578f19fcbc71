from stylebridge.cli import main

raise SystemExit(main())
