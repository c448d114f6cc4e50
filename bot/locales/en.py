MESSAGES: dict[str, str] = {
    "start": (
        "👋 Hi! I recognise landmarks.\n\n"
        "Send me a photo of a building, monument or square, and I will tell you which landmark it is "
        "(top 5 with probabilities), what kind of place it is, show example photos and where it is on the map.\n\n"
        "For example, send a photo of the Eiffel Tower or Notre-Dame de Paris. /help — more."
    ),
    "help": (
        "<b>How to use</b>\n"
        "• Send a photo (or an image file as a document) — I recognise the landmark.\n"
        "• Under the answer: 👍 / 👎 tell me whether I was right, 📷 shows more photos.\n"
        "• Type a landmark's name (or /search name) — in English or Russian, typos are fine.\n\n"
        "<b>Commands</b>\n/start — about the bot\n/search — find a landmark by name\n/help — this help"
    ),
    "cmd_start": "About the bot",
    "cmd_help": "How to use the bot",
    "cmd_search": "Find a landmark by name",
    "unknown_command": "I don't know that command.\n\n",
    "not_a_photo": "I can only recognise photos. Please send a picture of a landmark as a photo or an image file.",
    "not_image_document": "This file is not an image. Please send a photo (JPEG, PNG or WebP).",
    "corrupt_image": "I couldn't read this image: the file seems damaged or truncated. Please send another photo.",
    "too_many_pixels": "This image is too large (over 40 megapixels). Please send a smaller photo.",
    "file_too_large": "This file is over 20 MB, Telegram doesn't let bots download it. Please send a smaller photo.",
    "no_index": "The landmark gallery isn't ready yet. Please try again in a few minutes.",
    "busy": "Sorry, recognition is taking too long right now. Please try again in a minute.",
    "internal_error": "Sorry, something went wrong while recognising this photo. Please try again.",
    "recognized_title": "🏛 <b>{name}</b>",
    "unrecognized_title": "🤔 <b>I don't recognise this place.</b> It doesn't look like any landmark I know.",
    "candidates_header": "<b>Top 5 landmarks:</b>",
    "uncertain_header": "<b>Nearest candidates (uncertain):</b>",
    "categories_header": "<b>Kind of place:</b>",
    "place_line": "{city}, {country}",
    "cached_note": "⚡ from cache",
    "btn_right": "👍 right",
    "btn_wrong": "👎 wrong",
    "btn_more": "📷 more photos",
    "feedback_thanks_right": "Thanks! Glad I got it right.",
    "feedback_thanks_wrong": "Thanks, noted — this helps me improve.",
    "feedback_gone": "This answer is too old to rate.",
    "no_more_photos": "No more photos of this landmark.",
    "search_usage": "Type a name after the command, for example: /search Notre-Dame or /search эйфелева башня",
    "search_header": "🔎 <b>{query}</b>: {first}–{last} of {total}",
    "search_none": "🔎 Nothing matches <b>{query}</b>. Closest names:",
    "search_none_hint": "Send a photo to recognise a landmark, or try another name.",
    "search_line": "{rank}. <b>{name}</b> — {place} · match {score}%",
    "btn_prev": "◀️ back",
    "btn_next": "more ▶️",
    "btn_photos_of": "📷 {name}",
    "search_expired": "This search is too old, please search again.",
    "cat_church": "church", "cat_palace": "palace", "cat_museum": "museum", "cat_monument": "monument",
    "cat_tower": "tower", "cat_bridge": "bridge", "cat_square": "square", "cat_theater": "theatre",
    "cat_university": "university", "cat_civic_building": "civic building", "cat_other": "other",
}
