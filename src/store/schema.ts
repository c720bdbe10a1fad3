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
  // 2: eviction. Which manifest references which digest (so a blob is kept while a kept manifest needs it),
  // pinned references, and an index for least-recently-used order. Backfills refs from stored manifests.
  `
  CREATE TABLE manifest_refs (
    manifest TEXT NOT NULL,
    child    TEXT NOT NULL,
    PRIMARY KEY (manifest, child)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_refs_child ON manifest_refs (child);
  CREATE TABLE pins (
    upstream   TEXT NOT NULL,
    repo       TEXT NOT NULL,
    reference  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (upstream, repo, reference)
  ) WITHOUT ROWID;
  CREATE INDEX blobs_last_access ON blobs (last_access);
  CREATE INDEX manifests_last_access ON manifests (last_access);
  INSERT OR IGNORE INTO manifest_refs (manifest, child)
    SELECT m.digest, json_extract(j.value, '$.digest')
    FROM manifests m, json_each(CAST(m.body AS TEXT), '$.layers') j WHERE json_valid(CAST(m.body AS TEXT))
    UNION SELECT m.digest, json_extract(j.value, '$.digest')
    FROM manifests m, json_each(CAST(m.body AS TEXT), '$.manifests') j WHERE json_valid(CAST(m.body AS TEXT))
    UNION SELECT m.digest, json_extract(CAST(m.body AS TEXT), '$.config.digest')
    FROM manifests m WHERE json_valid(CAST(m.body AS TEXT)) AND json_extract(CAST(m.body AS TEXT), '$.config.digest') IS NOT NULL;
  `,
  // foreign layers: descriptors with urls or a foreign/non-distributable media type seen in manifests, the
  // repositories they were seen in, operator mirrors (mutable, unlike the signed manifest), and per-URL health.
  `
  CREATE TABLE IF NOT EXISTS foreign_layers (
    digest       TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    media_type   TEXT NOT NULL,
    is_foreign   INTEGER NOT NULL,          -- 1: foreign/non-distributable type (never asked of the registry)
    urls         TEXT NOT NULL,             -- JSON array, in manifest order
    status       TEXT NOT NULL DEFAULT 'unresolved',
    last_error   TEXT,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS foreign_repos (
    digest   TEXT NOT NULL,
    upstream TEXT NOT NULL,
    repo     TEXT NOT NULL,
    PRIMARY KEY (digest, upstream, repo)
  ) WITHOUT ROWID;
  -- digest '' = a prefix/template mirror for every digest ("https://mirror.example/{digest}").
  CREATE TABLE IF NOT EXISTS foreign_mirrors (
    id       INTEGER PRIMARY KEY,
    digest   TEXT NOT NULL,
    url      TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    UNIQUE (digest, url)
  );
  CREATE TABLE IF NOT EXISTS foreign_url_health (
    url          TEXT PRIMARY KEY,
    last_success INTEGER,
    last_failure INTEGER,
    failures     INTEGER NOT NULL DEFAULT 0,  -- consecutive
    last_error   TEXT
  ) WITHOUT ROWID;
  `,
  // 4: holders. Which upstream delivered (verified) the bytes of a digest: cached bytes are served under another
  // upstream only after that upstream delivered them itself. Foreign descriptors never prove the registry holds a
  // blob, so links made from them (before this version) are dropped. Existing links become holders once.
  `
  CREATE TABLE IF NOT EXISTS holders (
    digest   TEXT NOT NULL,
    upstream TEXT NOT NULL,  -- an upstream name, or ':foreign' (fetched and verified from an allowed foreign URL)
    PRIMARY KEY (digest, upstream)
  ) WITHOUT ROWID;
  DELETE FROM links WHERE digest IN (SELECT digest FROM foreign_layers);
  INSERT OR IGNORE INTO holders (digest, upstream) SELECT DISTINCT digest, upstream FROM links;
  INSERT OR IGNORE INTO holders (digest, upstream) SELECT digest, ':foreign' FROM foreign_layers WHERE status = 'cached';
  `,
  // 5: referrers lists (distribution-spec 1.1), cached like tags: the answer served for a subject (and filter).
  `
  CREATE TABLE IF NOT EXISTS referrers (
    upstream      TEXT NOT NULL,
    repo          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    artifact_type TEXT NOT NULL,            -- '' = unfiltered
    body          BLOB NOT NULL,            -- an image index, as served
    source        TEXT NOT NULL,            -- api | fallback-tag | empty
    filters       TEXT NOT NULL,            -- OCI-Filters-Applied, '' when none
    checked_at    INTEGER NOT NULL,
    PRIMARY KEY (upstream, repo, subject, artifact_type)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS referrers_checked_at ON referrers (checked_at);
  `,
];
