"""Background work on RQ: job functions (`jobs`), the periodic ticker (`periodic`), and the worker entry point."""
