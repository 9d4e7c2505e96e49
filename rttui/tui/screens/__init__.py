"""One module per screen; each exposes `SCREEN`, the class the app builds for its mode."""
