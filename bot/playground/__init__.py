"""The playground: a small Slack emulator on the bot's own server, so anyone can try madoguchi in a browser
without a Slack workspace (`madoguchi demo`). The bot talks to it through its production Slack code path."""
