"""The Microsoft Teams edge: the botbuilder adapter and bot, the Adaptive Card renderer, the app package."""
