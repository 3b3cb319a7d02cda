"""Reminders: debtors chosen by rules, the statutory notice → restriction → suspension
sequence (DOMAIN.md §7), and notices delivered by e-mail, SMS, phone and the personal cabinet
with proof of delivery."""
