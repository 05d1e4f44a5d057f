"""Model cards: the one schema, and the registry that loads models only through their cards."""
from .cards import CARD_DIR, RECOMMENDED, CardError, ModelCard, get_card, list_cards, load_card, recommended_name

__all__ = ["CARD_DIR", "RECOMMENDED", "CardError", "ModelCard", "get_card", "list_cards", "load_card", "recommended_name"]
