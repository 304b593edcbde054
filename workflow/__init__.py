"""The engine and the rules of the back office. Knows no chat platform."""
