"""Discord: the bot in servers and direct messages (discord.py, imported only when Discord is used)."""
