from anomaly_desk.cli import main

raise SystemExit(main())
