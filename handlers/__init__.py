"""The conversation, platform-neutral: neutral events in, neutral views out."""
