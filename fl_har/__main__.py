from fl_har.cli import main

raise SystemExit(main())
