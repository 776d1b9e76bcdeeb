"""The trunk side of a call: modem signal, per-second call quality, and the SMS route."""
