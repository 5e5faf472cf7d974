"""Render: the page shell around the prebuilt Svelte bundle; the data comes from :mod:`..contract`."""

from .html import render_interface

__all__ = ["render_interface"]
