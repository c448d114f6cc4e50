"""/start and /help, and the command menu registered in both languages."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import BotCommand, Message

from bot.locales import DEFAULT_LANGUAGE, LANGUAGES, Texts
from bot.services.admins import USER_COMMANDS

router = Router(name="start")


@router.message(CommandStart())
async def on_start(message: Message, texts: Texts) -> None:
    await message.answer(texts("start"))


@router.message(Command("help"))
async def on_help(message: Message, texts: Texts) -> None:
    await message.answer(texts("help"))


async def register_commands(bot: Bot) -> None:
    """The menu in each language, plus the default (English) for every other language."""
    for language in LANGUAGES:
        texts = Texts(language)
        commands = [BotCommand(command=name, description=texts(f"cmd_{name}")) for name in USER_COMMANDS]
        await bot.set_my_commands(commands, language_code=language)
        if language == DEFAULT_LANGUAGE:
            await bot.set_my_commands(commands)
