from fl_har_app.main import main

raise SystemExit(main())
