"""A small offline glossary of common sign words (Spanish, French, German, Italian, Portuguese → English).

The ``lite`` backend has no translation model (SmolLM2-135M cannot translate reliably: asked for
"SALIDA" it invents words), so signs are translated word by word from this list. Accents are
folded, so OCR output with or without them matches.
"""

from __future__ import annotations

import re
import unicodedata

GLOSSARY: dict[str, str] = {
    # Spanish
    "salida": "exit", "entrada": "entrance", "peligro": "danger", "cerrado": "closed", "abierto": "open",
    "empuje": "push", "tire": "pull", "empujar": "push", "tirar": "pull", "prohibido": "forbidden",
    "fumar": "smoking", "banos": "toilets", "bano": "toilet", "farmacia": "pharmacy", "biblioteca": "library",
    "estacion": "station", "aeropuerto": "airport", "hospital": "hospital", "policia": "police",
    "alto": "stop", "ceda": "yield", "paso": "way", "precaucion": "caution", "cuidado": "careful",
    "privado": "private", "ascensor": "elevator", "escalera": "stairs", "salida de emergencia": "emergency exit",
    # French
    "sortie": "exit", "entree": "entrance", "danger": "danger", "ferme": "closed", "ouvert": "open",
    "poussez": "push", "tirez": "pull", "interdit": "forbidden", "toilettes": "toilets", "gare": "station",
    "pharmacie": "pharmacy", "bibliotheque": "library", "attention": "caution", "arret": "stop",
    "ascenseur": "elevator", "escalier": "stairs", "sortie de secours": "emergency exit",
    # German
    "ausgang": "exit", "eingang": "entrance", "gefahr": "danger", "geschlossen": "closed",
    "geoffnet": "open", "offen": "open", "drucken": "push", "ziehen": "pull", "verboten": "forbidden",
    "toiletten": "toilets", "bahnhof": "station", "apotheke": "pharmacy", "bibliothek": "library",
    "achtung": "caution", "vorsicht": "careful", "halt": "stop", "aufzug": "elevator", "treppe": "stairs",
    "notausgang": "emergency exit", "krankenhaus": "hospital", "polizei": "police", "flughafen": "airport",
    # Italian
    "uscita": "exit", "ingresso": "entrance", "pericolo": "danger", "chiuso": "closed", "aperto": "open",
    "spingere": "push", "tirare": "pull", "vietato": "forbidden", "stazione": "station",
    "biblioteca comunale": "public library", "ospedale": "hospital", "uscita di sicurezza": "emergency exit",
    # Portuguese
    "saida": "exit", "perigo": "danger", "fechado": "closed", "aberto": "open", "empurre": "push",
    "puxe": "pull", "proibido": "forbidden", "estacao": "station", "farmacia popular": "pharmacy",
}


def fold(text: str) -> str:
    """Lowercase, strip accents, keep letters/digits/spaces."""
    t = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", t.lower()).strip()


def translate(text: str) -> list[tuple[str, str]]:
    """(source phrase, English) for every glossary phrase in ``text``, longest phrases first."""
    words = fold(text).split()
    out, i = [], 0
    while i < len(words):
        for n in (3, 2, 1):
            phrase = " ".join(words[i:i + n])
            if len(words[i:i + n]) == n and phrase in GLOSSARY:
                out.append((phrase, GLOSSARY[phrase]))
                i += n
                break
        else:
            i += 1
    return out
