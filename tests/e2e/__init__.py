"""The UI in headless Chromium and `make ui` shutting down."""
