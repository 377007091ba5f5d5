"""Slack: the bot in workspaces, in Socket Mode or HTTP mode (slack-bolt, imported only when Slack is used)."""
