//! Embedded schema migrations, applied in order at start. `PRAGMA user_version` records how
//! many have run; a database from a newer pasarela (a higher version) is refused, never guessed at.

/// Each entry runs once, in its own transaction, and is never edited after release: a schema
/// change is a new entry at the end.
pub const MIGRATIONS: &[&str] = &[
    // 1: the message history, both directions, every channel.
    r#"
    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        direction       TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
        channel         TEXT    NOT NULL,
        transport       TEXT,
        peer            TEXT    NOT NULL,
        body            TEXT    NOT NULL,
        state           TEXT    NOT NULL,
        priority        INTEGER NOT NULL DEFAULT 1,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        last_error      TEXT,
        provider_ref    TEXT,
        customer_id     INTEGER,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        sent_at         INTEGER,
        delivered_at    INTEGER
    );
    -- The dispatcher's claim: due queued messages by priority, oldest first.
    CREATE INDEX messages_queue ON messages (priority, id) WHERE state = 'queued';
    CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state = 'queued';
    -- History filters, newest first.
    CREATE INDEX messages_state ON messages (state, id);
    CREATE INDEX messages_peer ON messages (peer, id);
    CREATE INDEX messages_created ON messages (created_at);
    -- Status reports find their message by the provider's reference.
    CREATE INDEX messages_ref ON messages (transport, provider_ref) WHERE provider_ref IS NOT NULL;
    -- A transport that delivers the same inbound message twice stores it once.
    CREATE UNIQUE INDEX messages_inbound_ref ON messages (transport, provider_ref)
        WHERE direction = 'in' AND provider_ref IS NOT NULL;
    -- Text search (`q`): a trigram index finds any substring of three or more characters,
    -- ignoring case and accents. It is filled in the background (`index_text`), off the
    -- accept path; rows past `meta.fts_upto` are searched by scanning, so results are complete.
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        body, content = 'messages', content_rowid = 'id',
        tokenize = 'trigram remove_diacritics 1'
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('fts_upto', 0);
    "#,
    // 2: SMS parts, inbound (until a long message is complete) and outbound (for status reports).
    r#"
    CREATE TABLE sms_parts_in (
        id          INTEGER PRIMARY KEY,
        transport   TEXT    NOT NULL,
        sender      TEXT    NOT NULL,
        ref         INTEGER NOT NULL,
        total       INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        body        TEXT    NOT NULL,
        -- Recognises a part read twice (a restart between storing it and deleting it from the SIM).
        pdu_hash    TEXT    NOT NULL,
        received_at INTEGER NOT NULL,
        -- Set when the message it belongs to is complete.
        message_id  INTEGER
    );
    CREATE UNIQUE INDEX sms_parts_in_hash ON sms_parts_in (transport, pdu_hash);
    CREATE INDEX sms_parts_in_open ON sms_parts_in (transport, sender, ref, total) WHERE message_id IS NULL;
    CREATE TABLE sms_parts_out (
        message_id INTEGER NOT NULL,
        seq        INTEGER NOT NULL,
        total      INTEGER NOT NULL,
        transport  TEXT    NOT NULL,
        mr         INTEGER NOT NULL,
        status     TEXT    NOT NULL DEFAULT 'sent',
        sent_at    INTEGER NOT NULL,
        PRIMARY KEY (message_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX sms_parts_out_mr ON sms_parts_out (transport, mr, sent_at);
    "#,
    // 3: the customer directory, tickets, billing events, opt-outs, run-time settings; inbound
    // messages waiting for the keyword rules; delivery windows on outbound messages.
    r#"
    -- Inbound rows the rules have not handled yet. Rows from before this version count as handled.
    ALTER TABLE messages ADD COLUMN handled INTEGER NOT NULL DEFAULT 1;
    -- The delivery window a notification or bulk message waits for (NULL: none).
    ALTER TABLE messages ADD COLUMN send_window TEXT;
    CREATE INDEX messages_unhandled ON messages (id) WHERE direction = 'in' AND handled = 0;
    CREATE INDEX messages_scheduled ON messages (next_attempt_at) WHERE state = 'scheduled';
    CREATE TABLE customers (
        id              INTEGER PRIMARY KEY,
        code            TEXT    NOT NULL UNIQUE,
        name            TEXT    NOT NULL,
        email           TEXT,
        -- Cents; exact.
        balance         INTEGER,
        due_date        TEXT,
        plan            TEXT,
        zone            TEXT,
        -- Any other fields, a JSON object of strings.
        extra           TEXT    NOT NULL DEFAULT '{}',
        optout_sms      INTEGER NOT NULL DEFAULT 0,
        optout_whatsapp INTEGER NOT NULL DEFAULT 0,
        optout_email    INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    -- A number may be on several customers (a family's accounts): lookups report it.
    CREATE TABLE customer_phones (
        phone       TEXT    NOT NULL,
        customer_id INTEGER NOT NULL,
        position    INTEGER NOT NULL,
        PRIMARY KEY (phone, customer_id)
    ) WITHOUT ROWID;
    CREATE INDEX customer_phones_customer ON customer_phones (customer_id, position);
    -- Names of the extra fields seen on any customer (template variables).
    CREATE TABLE customer_fields (name TEXT PRIMARY KEY) WITHOUT ROWID;
    -- Numbers that sent BAJA on a channel: no notifications or bulk there.
    CREATE TABLE optouts (
        channel TEXT    NOT NULL,
        peer    TEXT    NOT NULL,
        at      INTEGER NOT NULL,
        PRIMARY KEY (channel, peer)
    ) WITHOUT ROWID;
    CREATE TABLE tickets (
        id               INTEGER PRIMARY KEY,
        customer_id      INTEGER,
        customer_code    TEXT,
        peer             TEXT    NOT NULL,
        channel          TEXT    NOT NULL,
        text             TEXT    NOT NULL,
        state            TEXT    NOT NULL DEFAULT 'open',
        operator         TEXT    NOT NULL,
        category         TEXT    NOT NULL,
        message_id       INTEGER,
        -- Company-local date (YYYY-MM-DD), for the per-day limit.
        day              TEXT    NOT NULL,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        closed_at        INTEGER,
        -- Forwarding to the billing system: NULL (off), pending, done, failed.
        forward_state    TEXT,
        forward_attempts INTEGER NOT NULL DEFAULT 0,
        forward_next_at  INTEGER,
        forward_error    TEXT
    );
    CREATE INDEX tickets_peer_day ON tickets (peer, day);
    CREATE INDEX tickets_customer_day ON tickets (customer_id, day);
    CREATE INDEX tickets_state ON tickets (state, id);
    CREATE INDEX tickets_forward ON tickets (forward_next_at) WHERE forward_state = 'pending';
    -- Billing events by their id: a retried event finds its first answer here.
    CREATE TABLE events (
        id          TEXT    PRIMARY KEY,
        type        TEXT    NOT NULL,
        body        TEXT    NOT NULL,
        result      TEXT    NOT NULL,
        received_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Settings edited through the API (JSON), over the config file's.
    CREATE TABLE settings (
        key        TEXT    PRIMARY KEY,
        value      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: the operators' pages: users, their sessions, what each conversation has been read up
    // to, and who sent a message from the pages.
    r#"
    CREATE TABLE users (
        id         INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL UNIQUE,
        role       TEXT    NOT NULL CHECK (role IN ('admin', 'operator')),
        -- argon2id PHC string.
        password   TEXT    NOT NULL,
        lang       TEXT    NOT NULL DEFAULT 'es',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    -- A session is known by the SHA-256 of its cookie, so a copy of the database opens none.
    CREATE TABLE sessions (
        token_hash TEXT    PRIMARY KEY,
        user_id    INTEGER NOT NULL,
        csrf       TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions (user_id);
    -- The newest inbound message of a number the operators have seen.
    CREATE TABLE conversation_reads (
        peer    TEXT    PRIMARY KEY,
        read_id INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- The user who sent a message from the pages (NULL: the API, a rule or an event).
    ALTER TABLE messages ADD COLUMN author TEXT;
    "#,
    // 5: billing events carried over several channels (`crate::events`): one row per planned
    // channel, in order; when a step's message fails for good the trigger queues the next
    // (not to a number that sent BAJA on that channel).
    r#"
    CREATE TABLE event_steps (
        event_id    TEXT    NOT NULL,
        position    INTEGER NOT NULL,
        channel     TEXT    NOT NULL,
        peer        TEXT    NOT NULL,
        body        TEXT    NOT NULL,
        customer_id INTEGER,
        send_window TEXT,
        message_id  INTEGER,
        PRIMARY KEY (event_id, position)
    ) WITHOUT ROWID;
    CREATE INDEX event_steps_message ON event_steps (message_id) WHERE message_id IS NOT NULL;
    -- WhatsApp templates as Meta last listed them (`GET /{waba_id}/message_templates`).
    CREATE TABLE whatsapp_templates (
        name       TEXT    NOT NULL,
        language   TEXT    NOT NULL,
        category   TEXT    NOT NULL,
        status     TEXT    NOT NULL,
        components TEXT    NOT NULL,
        synced_at  INTEGER NOT NULL,
        PRIMARY KEY (name, language)
    ) WITHOUT ROWID;
    CREATE TRIGGER event_fallback AFTER UPDATE OF state ON messages
    WHEN NEW.state = 'failed' AND OLD.state <> 'failed' AND NEW.direction = 'out'
    BEGIN
        INSERT INTO messages (direction, channel, peer, body, state, priority, attempts,
                              next_attempt_at, customer_id, created_at, updated_at, send_window)
        SELECT 'out', n.channel, n.peer, n.body, 'queued', 1, 0, NEW.updated_at, n.customer_id,
               NEW.updated_at, NEW.updated_at, n.send_window
        FROM event_steps s JOIN event_steps n
             ON n.event_id = s.event_id AND n.position = s.position + 1
        WHERE s.message_id = NEW.id AND n.message_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM optouts o WHERE o.channel = n.channel AND o.peer = n.peer);
        UPDATE event_steps SET message_id = last_insert_rowid()
        WHERE message_id IS NULL AND EXISTS (
            SELECT 1 FROM event_steps s
            WHERE s.message_id = NEW.id AND s.event_id = event_steps.event_id
              AND event_steps.position = s.position + 1)
          AND NOT EXISTS (SELECT 1 FROM optouts o
                          WHERE o.channel = event_steps.channel AND o.peer = event_steps.peer);
    END;
    "#,
    // 6: a customer's own channel order per billing event type (`{"invoice": ["sms"]}`),
    // used instead of the event's `channels` when set (`crate::events::plan`).
    r#"
    ALTER TABLE customers ADD COLUMN channels TEXT NOT NULL DEFAULT '{}';
    "#,
    // 7: every state a message goes through, with its time, for its page in the web pages.
    // Kept by triggers, so no write path can forget it; deleted with its message (retention).
    r#"
    CREATE TABLE message_states (
        message_id INTEGER NOT NULL,
        at         INTEGER NOT NULL,
        state      TEXT    NOT NULL,
        transport  TEXT,
        error      TEXT
    );
    CREATE INDEX message_states_message ON message_states (message_id);
    CREATE TRIGGER message_state_first AFTER INSERT ON messages
    BEGIN
        INSERT INTO message_states (message_id, at, state, transport, error)
        VALUES (NEW.id, NEW.created_at, NEW.state, NEW.transport, NEW.last_error);
    END;
    CREATE TRIGGER message_state_change AFTER UPDATE OF state ON messages
    WHEN NEW.state <> OLD.state
    BEGIN
        INSERT INTO message_states (message_id, at, state, transport, error)
        VALUES (NEW.id, NEW.updated_at, NEW.state, NEW.transport, NEW.last_error);
    END;
    CREATE TRIGGER message_state_gone AFTER DELETE ON messages
    BEGIN
        DELETE FROM message_states WHERE message_id = OLD.id;
    END;
"#,
    // 8: email: editable templates per document type (subject, text, HTML); the SMTP server's
    // final answer per mail, for the history; the rate limits' send times, read when the
    // dispatcher starts so a restart does not open a fresh burst.
    r#"
    CREATE TABLE email_templates (
        kind       TEXT    PRIMARY KEY,
        subject    TEXT    NOT NULL,
        text       TEXT    NOT NULL,
        html       TEXT,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE message_answers (
        message_id INTEGER PRIMARY KEY,
        answer     TEXT    NOT NULL
    );
    CREATE TRIGGER message_answer_gone AFTER DELETE ON messages
    BEGIN
        DELETE FROM message_answers WHERE message_id = OLD.id;
    END;
    CREATE INDEX messages_sent ON messages (transport, sent_at) WHERE sent_at IS NOT NULL;
    "#,
    // 9: outages by zone (`crate::outage`): the outage, its customers frozen when it opened
    // (who was notified, who wrote and on which channel, whether the all-clear went out), and
    // the inbound texts answered with it instead of a ticket each.
    r#"
    CREATE TABLE outages (
        id            INTEGER PRIMARY KEY,
        state         TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
        -- The customer field matched (`zona`, `nodo`…) and its values, a JSON array.
        field         TEXT    NOT NULL,
        zones         TEXT    NOT NULL,
        message       TEXT    NOT NULL DEFAULT '',
        -- Unix ms; NULL: not known yet.
        eta           INTEGER,
        -- `api` or `alertmanager` (then `alert_zone` is the zone label's value).
        source        TEXT    NOT NULL,
        alert_zone    TEXT,
        master_ticket INTEGER,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        resolved_at   INTEGER,
        resolve_note  TEXT
    );
    CREATE INDEX outages_state ON outages (state, id);
    CREATE TABLE outage_customers (
        outage_id      INTEGER NOT NULL,
        customer_id    INTEGER NOT NULL,
        -- The customer's value of the field (`%zona%`).
        zone           TEXT    NOT NULL,
        -- Where the notice went (NULL: not notified: opted out, no phone, already told).
        notice_channel TEXT,
        notice_peer    TEXT,
        -- Where the customer last wrote from during the outage.
        wrote_channel  TEXT,
        wrote_peer     TEXT,
        writes         INTEGER NOT NULL DEFAULT 0,
        replies        INTEGER NOT NULL DEFAULT 0,
        resolved_sent  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (outage_id, customer_id)
    ) WITHOUT ROWID;
    CREATE INDEX outage_customers_customer ON outage_customers (customer_id, outage_id);
    CREATE TABLE outage_messages (
        message_id INTEGER PRIMARY KEY,
        outage_id  INTEGER NOT NULL,
        ticket_id  INTEGER
    );
    CREATE INDEX outage_messages_outage ON outage_messages (outage_id);
    "#,
    // 10 (campaigns): a campaign (its accepted request, its state) and its task list, one row
    // per selected customer, written at start in one transaction. A task becomes a message in
    // the outbox only when the campaign's feeder queues it (`crate::campaign`), at the
    // campaign's rate: the outbox never holds a whole campaign at once.
    r#"
    CREATE TABLE campaigns (
        id          INTEGER PRIMARY KEY,
        name        TEXT    NOT NULL,
        channel     TEXT    NOT NULL,
        -- The accepted request (template, selection, window, rate, report address), JSON.
        spec        TEXT    NOT NULL,
        -- The preview (counts, exclusions by reason), JSON: at creation, then as frozen at start.
        preview     TEXT    NOT NULL DEFAULT '{}',
        state       TEXT    NOT NULL CHECK (state IN ('draft', 'running', 'paused', 'done', 'cancelled')),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        started_at  INTEGER,
        finished_at INTEGER
    );
    CREATE INDEX campaigns_state ON campaigns (state) WHERE state = 'running';
    CREATE TABLE campaign_tasks (
        campaign_id INTEGER NOT NULL,
        position    INTEGER NOT NULL,
        customer_id INTEGER NOT NULL,
        code        TEXT    NOT NULL,
        channel     TEXT,
        peer        TEXT,
        body        TEXT,
        -- pending (not queued yet), queued (message_id set), skipped, cancelled.
        state       TEXT    NOT NULL,
        reason      TEXT,
        message_id  INTEGER,
        queued_at   INTEGER,
        PRIMARY KEY (campaign_id, position)
    ) WITHOUT ROWID;
    CREATE INDEX campaign_tasks_pending ON campaign_tasks (campaign_id, position) WHERE state = 'pending';
    CREATE INDEX campaign_tasks_message ON campaign_tasks (message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX campaign_tasks_queued ON campaign_tasks (campaign_id, queued_at) WHERE queued_at IS NOT NULL;
    CREATE INDEX campaign_tasks_peer ON campaign_tasks (peer, queued_at) WHERE message_id IS NOT NULL;
    "#,
];
