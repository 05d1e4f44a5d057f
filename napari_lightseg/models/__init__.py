"""Model cards: the one schema, and the registry that loads models only through their cards."""
from .cards import CARD_DIR, CardError, ModelCard, get_card, list_cards, load_card

__all__ = ["CARD_DIR", "CardError", "ModelCard", "get_card", "list_cards", "load_card"]
