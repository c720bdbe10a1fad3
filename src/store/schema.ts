// SQLite schema and migrations, applied in order and keyed on PRAGMA user_version.
// (Kept as TypeScript, not schema.sql, so tsc ships it in dist/ without a copy step.)
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    last_access INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- A digest known to belong to upstream/repo: seen in one of its manifests, or confirmed by upstream.
  CREATE TABLE links (
    upstream TEXT NOT NULL,
    repo     TEXT NOT NULL,
    digest   TEXT NOT NULL,
    PRIMARY KEY (upstream, repo, digest)
  ) WITHOUT ROWID;
  CREATE INDEX links_digest ON links (digest);
  -- Manifests are small (capped at 4 MiB): kept here byte-exact, so one row is one atomic commit.
  CREATE TABLE manifests (
    digest      TEXT PRIMARY KEY,
    media_type  TEXT NOT NULL,
    body        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    last_access INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE tags (
    upstream   TEXT NOT NULL,
    repo       TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    checked_at INTEGER NOT NULL,
    PRIMARY KEY (upstream, repo, tag)
  ) WITHOUT ROWID;
  `,
];
