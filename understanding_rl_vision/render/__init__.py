"""Render: the page shell around the prebuilt Svelte bundle; the data comes from :mod:`..export`."""

from .html import render_interface

__all__ = ["render_interface"]
