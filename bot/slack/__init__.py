"""The Slack edge: the Bolt app, its listeners, and the Block Kit renderer of neutral views."""
