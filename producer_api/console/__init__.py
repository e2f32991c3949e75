"""The web console at ``/ui``: sessions (``sessions.py``), routes, and the files it ships."""
