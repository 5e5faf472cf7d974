"""``python -m understanding_rl_vision.contract > svelte/src/lib/contract.js`` regenerates the page's
copy of the data contract."""

from .contract import javascript_contract

print(javascript_contract(), end="")
