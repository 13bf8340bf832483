"""Agent-framework span conventions: the mapping table and the classifier."""

from agentprom.conventions.classify import Classified, classify

__all__ = ["Classified", "classify"]
