"""Attribution: which scalar to explain (outputs), where (layers), and how (integrated gradients)."""
