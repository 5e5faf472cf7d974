"""Small typed utilities shared by the pipeline stages."""
