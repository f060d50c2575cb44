"""Saliency methods: which input pixels matter for the target class."""
