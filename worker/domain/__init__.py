"""The worker's SQLite domain store: bills, users, notifications, audit logs, revenue, reports."""
