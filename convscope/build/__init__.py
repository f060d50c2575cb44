"""Build-time tooling: train and convert the built-in models, write model archives.

Nothing here runs in the request path, and nothing downloads: weights and data come from
packages installed by the project (see FACTS.md in the design notes).
"""
