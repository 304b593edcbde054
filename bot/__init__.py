"""The edges and the process: Slack, Teams, playground, delivery, scheduler, CLI."""
