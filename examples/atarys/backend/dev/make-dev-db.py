#!/usr/bin/python3
"""make-dev-db.py OUT.sqlite [--rows N]

Write ATARYS's SQLite development database: the table `chantiers` as a
development setup on SQLite has it (atarys/db.py has PostgreSQL's), with N
chantiers (300 by default). The same N gives the same rows every time: the
names, clients and dates come from a fixed seed, not from the clock.

What it holds is what a development database gathers, so that an import
into PostgreSQL (the appliance's import-sqlite) is tried on it:
- clients that look like personal data: a person's name and e-mail address
  (example.* domains), a company, or none (NULL);
- created_at as text over one year, in the forms SQLite and its clients
  write: '2026-03-01 14:05:09' (CURRENT_TIMESTAMP, UTC),
  '2026-03-01 14:05:09.123456' (Python's sqlite3), and ISO 8601 with an
  offset from a browser, '2026-03-01T16:05:09+02:00';
- ids with holes (some chantiers deleted), so that the highest id is not the
  number of rows.

OUT is replaced if it exists (written aside, then renamed).
"""

import argparse
import datetime
import os
import random
import sqlite3
import sys

SCHEMA = """
CREATE TABLE chantiers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       VARCHAR(200) NOT NULL,
    client     VARCHAR(200),
    status     TEXT NOT NULL DEFAULT 'planned',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX chantiers_created_at_idx ON chantiers (created_at);
"""

WORKS = ["Rénovation", "Extension", "Ravalement de façade", "Réfection de toiture",
         "Isolation", "Construction", "Mise aux normes", "Aménagement", "Démolition",
         "Étanchéité", "Carrelage", "Charpente"]
PLACES = ["de la mairie", "de l'école primaire", "du gymnase", "de la médiathèque",
          "d'une maison individuelle", "d'un immeuble", "de la salle des fêtes",
          "du groupe scolaire", "d'un entrepôt", "de la crèche", "d'un cabinet médical",
          "de la gendarmerie"]
TOWNS = ["Lyon", "Villeurbanne", "Bron", "Vénissieux", "Caluire", "Écully", "Oullins",
         "Saint-Priest", "Vaulx-en-Velin", "Tassin", "Meyzieu", "Décines"]
FIRST = ["Camille", "Léa", "Hugo", "Chloé", "Louis", "Inès", "Jules", "Manon", "Gabriel",
         "Zoé", "Arthur", "Jeanne", "Noé", "Aurélie", "Théo", "Émilie"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
        "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Rousseau"]
COMPANIES = ["Commune de {town}", "SCI Les Tilleuls", "Bailleur Rhône Habitat",
             "SARL Durand & Fils", "Syndic Foncia {town}", "Métropole de Lyon"]
STATUSES = ["planned", "active", "done"]
START = datetime.datetime(2025, 12, 1, tzinfo=datetime.timezone.utc)


def ascii_lower(s):
    table = str.maketrans("éèêëàâîïôöûüçÉ", "eeeeaaiioouucE")
    return s.translate(table).lower().replace(" ", "")


def client(rng):
    kind = rng.random()
    if kind < 0.15:
        return None
    if kind < 0.35:
        return rng.choice(COMPANIES).format(town=rng.choice(TOWNS))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(["example.fr", "example.com", "example.org"])
    return f"{first} {last} <{ascii_lower(first)}.{ascii_lower(last)}@{domain}>"


def created_at(rng, i, n):
    # Spread over a year, in insertion order, with a few minutes' jitter.
    t = START + datetime.timedelta(seconds=int(i * 365 * 86400 / n) + rng.randrange(3600))
    form = rng.random()
    if form < 0.6:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    if form < 0.85:
        return t.replace(microsecond=rng.randrange(1000000)).strftime("%Y-%m-%d %H:%M:%S.%f")
    offset = datetime.timezone(datetime.timedelta(hours=rng.choice([1, 2, -5])))
    return t.astimezone(offset).isoformat()


def main():
    p = argparse.ArgumentParser(description="Write ATARYS's SQLite development database.")
    p.add_argument("out", metavar="OUT.sqlite")
    p.add_argument("--rows", type=int, default=300, help="chantiers kept (default 300)")
    args = p.parse_args()
    if args.rows < 1:
        p.error("--rows takes a number of 1 or more")

    rng = random.Random(20261204)
    tmp = args.out + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    db = sqlite3.connect(tmp)
    db.executescript(SCHEMA)
    # About one in ten chantiers is deleted again, as in a database in use.
    total = args.rows + args.rows // 9 + 1
    deleted = set(rng.sample(range(1, total + 1), total - args.rows))
    for i in range(1, total + 1):
        name = f"{rng.choice(WORKS)} {rng.choice(PLACES)} ({rng.choice(TOWNS)})"
        db.execute("INSERT INTO chantiers (name, client, status, created_at) VALUES (?, ?, ?, ?)",
                   (name, client(rng), rng.choice(STATUSES), created_at(rng, i, total)))
    db.executemany("DELETE FROM chantiers WHERE id = ?", [(i,) for i in sorted(deleted)])
    db.commit()
    db.close()
    os.replace(tmp, args.out)
    print(f"{args.out}: {args.rows} chantiers")


if __name__ == "__main__":
    sys.exit(main())
