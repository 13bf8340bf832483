"""Agent-framework span conventions: the mapping table and the classifier."""

from agentprom.conventions.classify import COMPILED, Classified, classify

__all__ = ["COMPILED", "Classified", "classify"]
