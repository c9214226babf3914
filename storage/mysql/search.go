package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
)

// The text index (storage/fulltext) in three tables: search_lists holds
// the posting lists (conv, bucket, gram) → list, one row each;
// search_parts what the latest passes added to the lists of a
// conversation's open bucket, in parts; search_progress the seq up to
// which each conversation is indexed, and how many passes gave it parts
// since they were last folded. The indexer writes them from its own
// goroutine, in transactions of their own, after the messages' commit.
//
// A list is its row and its parts, concatenated (the readers take them in
// any order: a list's offsets are a set). Each pass inserts what it adds
// to a list of the open bucket as a part of its own, numbered by the
// conversation's progress after the pass, so a write costs the size of
// what it adds. Every foldAfter passes, and when a pass moves the progress
// into a later bucket, the parts of the bucket are folded into its rows
// (appended with CONCAT, each offset once), in the pass's transaction:
// a row is rewritten once per foldAfter passes, and a list has at most
// about foldAfter parts for a search to read. (Appended in place with
// CONCAT on every pass, each list a pass touched was rewritten whole: with
// text messages that was 6 KB of redo log a message, and most of MariaDB's
// CPU, under the cluster bench.) What a pass posts into a bucket already
// left (an edit of an older message, messages that ended a bucket) goes
// to its row with CONCAT. A part number met again (two nodes indexing one
// conversation) appends to that part with CONCAT. A node that read the
// progress before another folded may still add a part to a bucket left:
// searched and unindexed like any, it stays.
//
// Nodes of an earlier version (a cluster upgraded one node at a time) read
// and write search_lists only: their searches miss what is in parts until
// it is folded, and their unindexing leaves its postings in parts, where a
// search finds them as candidates and drops the messages on reading them
// (recalled: no text).
//
// Why not InnoDB FULLTEXT: MariaDB, which Parley runs on, has no ngram
// parser, and the built-in one cuts words at spaces, so Chinese and Japanese
// text would be one "word" per sentence. (MySQL 8's ngram parser would do,
// but then ranking by recency over the user's conversations is a filesort of
// every match.) The bigram lists are the embedded store's, so both stores
// find the same messages in the same order.

var _ storage.Searcher = (*Store)(nil)

// Search implements storage.Searcher on one snapshot (a read-only
// repeatable-read transaction).
func (s *Store) Search(ctx context.Context, q fulltext.Query) (fulltext.Page, error) {
	if s.closed.Load() {
		return fulltext.Page{}, storage.ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fulltext.Page{}, s.fail("search", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fulltext.Search(ctx, searchSource{s, tx}, q) // its reads wrap their errors
}

// Unindex implements storage.Searcher.
func (s *Store) Unindex(ctx context.Context, msgs []protocol.Message) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return s.idx.Remove(ctx, msgs)
}

// IndexStats returns the indexer's counters since the store opened.
func (s *Store) IndexStats() fulltext.Stats { return s.idx.Stats() }

// IndexFlush implements storage.Searcher.
func (s *Store) IndexFlush(ctx context.Context) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return s.idx.Flush(ctx)
}

// searchSource is fulltext.Source in a transaction.
type searchSource struct {
	s  *Store
	tx *sql.Tx
}

func (ss searchSource) Memberships(ctx context.Context, user int64) ([]fulltext.Membership, error) {
	var out []fulltext.Membership
	err := ss.s.each(ctx, ss.tx, "search", func(r *sql.Rows) error {
		var m fulltext.Membership
		if err := r.Scan(&m.Conv, &m.Cleared, &m.Last, &m.LastTime); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	}, `SELECT uc.conv, uc.cleared_seq, COALESCE(c.last_seq, 0), COALESCE(c.last_time, 0) FROM user_convs uc
		LEFT JOIN conversations c ON c.conv = uc.conv WHERE uc.user_id = ?`, user)
	return out, err
}

var _ fulltext.BatchSource = searchSource{}

func (ss searchSource) Lists(ctx context.Context, conv string, bucket uint64, ranges []fulltext.GramRange) ([][]byte, error) {
	out, err := ss.ListsMany(ctx, []fulltext.ListReq{{Conv: conv, Bucket: bucket}}, ranges)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// gramWhere is the condition on gram of ranges, and its arguments.
func gramWhere(ranges []fulltext.GramRange) (string, []any) {
	var where strings.Builder
	var args []any
	for i, r := range ranges {
		if i > 0 {
			where.WriteString(" OR ")
		}
		if r.Lo == r.Hi {
			where.WriteString("gram = ?")
			args = append(args, uint64(r.Lo))
		} else {
			where.WriteString("gram BETWEEN ? AND ?")
			args = append(args, uint64(r.Lo), uint64(r.Hi))
		}
	}
	return where.String(), args
}

// ListsMany reads the lists of every request in one query per bucket
// number (a search's first requests are each conversation's newest bucket,
// mostly bucket 0).
func (ss searchSource) ListsMany(ctx context.Context, reqs []fulltext.ListReq, ranges []fulltext.GramRange) ([][][]byte, error) {
	out := make([][][]byte, len(reqs))
	byBucket := make(map[uint64]map[string]int) // bucket → conv → index in reqs
	for i, r := range reqs {
		out[i] = make([][]byte, len(ranges))
		if byBucket[r.Bucket] == nil {
			byBucket[r.Bucket] = make(map[string]int)
		}
		byBucket[r.Bucket][r.Conv] = i
	}
	grams, gramArgs := gramWhere(ranges)
	for bucket, convs := range byBucket {
		args := make([]any, 0, 1+len(convs)+len(gramArgs))
		args = append(args, bucket)
		for c := range convs {
			args = append(args, c)
		}
		args = append(args, gramArgs...)
		err := ss.s.each(ctx, ss.tx, "search", func(r *sql.Rows) error {
			var conv string
			var g uint64
			var list []byte
			if err := r.Scan(&conv, &g, &list); err != nil {
				return err
			}
			i, ok := convs[conv]
			if !ok {
				return nil
			}
			for j, rg := range ranges {
				if fulltext.Gram(g) >= rg.Lo && fulltext.Gram(g) <= rg.Hi {
					out[i][j] = append(out[i][j], list...)
				}
			}
			return nil
		}, `SELECT conv, gram, list FROM search_lists WHERE bucket = ? AND conv IN (`+placeholders(len(convs), "?")+`) AND (`+grams+`)
			UNION ALL SELECT conv, gram, list FROM search_parts WHERE bucket = ? AND conv IN (`+placeholders(len(convs), "?")+`) AND (`+grams+`)`,
			append(args, args...)...)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (ss searchSource) Messages(ctx context.Context, user int64, conv string, seqs []uint64) ([]protocol.Message, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	args := append([]any{user, conv}, anys(seqs)...)
	msgs, err := ss.s.folded(ctx, ss.tx, "search", len(seqs), `SELECT `+mCols+`, mm.meta FROM `+ss.s.table(conv)+` m `+hiddenJoin+` `+metaJoin+`
		WHERE m.conv = ? AND m.seq IN (`+placeholders(len(seqs), "?")+`) AND h.seq IS NULL`, args...)
	return dropExpired(msgs, nowMilli()), err
}

// MessagesMany reads the messages of several conversations in one query
// per shard table.
func (ss searchSource) MessagesMany(ctx context.Context, user int64, seqs map[string][]uint64) ([]protocol.Message, error) {
	byTable := make(map[string][]string)
	for conv := range seqs {
		t := ss.s.table(conv)
		byTable[t] = append(byTable[t], conv)
	}
	var out []protocol.Message
	for table, convs := range byTable {
		var where strings.Builder
		args := []any{user}
		n := 0
		for i, conv := range convs {
			if i > 0 {
				where.WriteString(" OR ")
			}
			where.WriteString("(m.conv = ? AND m.seq IN (" + placeholders(len(seqs[conv]), "?") + "))")
			args = append(append(args, conv), anys(seqs[conv])...)
			n += len(seqs[conv])
		}
		msgs, err := ss.s.folded(ctx, ss.tx, "search", n, `SELECT `+mCols+`, mm.meta FROM `+table+` m `+hiddenJoin+` `+metaJoin+`
			WHERE (`+where.String()+`) AND h.seq IS NULL`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return dropExpired(out, nowMilli()), nil
}

// metaJoin joins each message m to its Meta, mm.meta (NULL when none).
const metaJoin = `LEFT JOIN message_meta mm ON mm.conv = m.conv AND mm.seq = m.seq`

// folded reads messages whose query selects mCols and then mm.meta, and
// folds the Meta into each: a search checks and shows a message as History
// does (an edited one by its latest body).
func (s *Store) folded(ctx context.Context, q querier, what string, limit int, query string, args ...any) ([]protocol.Message, error) {
	msgs := make([]protocol.Message, 0, min(limit, 64))
	err := s.each(ctx, q, what, func(r *sql.Rows) error {
		var m protocol.Message
		var raw []byte
		if err := r.Scan(&m.Conv, &m.Seq, &m.MsgID, &m.From, &m.To, &m.GroupID,
			&m.ClientMsgID, &m.ContentType, &m.Body, &m.ServerTime, &m.ExpiresAt, &raw); err != nil {
			return err
		}
		if m.Body == nil {
			m.Body = []byte{}
		}
		mt, err := storage.DecodeMeta(raw)
		if err != nil {
			return fmt.Errorf("decode meta: %w", err)
		}
		storage.Fold(&m, &mt, protocol.ShownReactors)
		msgs = append(msgs, m)
		return nil
	}, query, args...)
	return msgs, err
}

// indexLists is fulltext.Lists on the database.
type indexLists struct{ s *Store }

func (l indexLists) Progress(ctx context.Context, conv string) (uint64, error) {
	var seq uint64
	err := l.s.db.QueryRowContext(ctx, `SELECT seq FROM search_progress WHERE conv = ?`, conv).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}

func (l indexLists) Behind(ctx context.Context) ([]fulltext.Pending, error) {
	var out []fulltext.Pending
	err := l.s.each(ctx, l.s.db, "index catch-up", func(r *sql.Rows) error {
		var p fulltext.Pending
		if err := r.Scan(&p.Conv, &p.Last); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	}, `SELECT c.conv, c.last_seq FROM conversations c LEFT JOIN search_progress p ON p.conv = c.conv
		WHERE c.last_seq > COALESCE(p.seq, 0)`)
	return out, err
}

func (l indexLists) Load(ctx context.Context, conv string, after uint64, n int) ([]protocol.Message, error) {
	msgs, err := l.s.messages(ctx, l.s.db, "index", n, `SELECT `+messageCols+` FROM `+l.s.table(conv)+`
		WHERE conv = ? AND seq > ? ORDER BY seq LIMIT ?`, conv, after, n)
	if err != nil {
		return nil, err
	}
	var events []uint64
	at := make(map[uint64]int)
	for i := range msgs {
		if protocol.IsEvent(msgs[i].ContentType) {
			events = append(events, msgs[i].Seq)
			at[msgs[i].Seq] = i
		}
	}
	if len(events) == 0 {
		return msgs, nil
	}
	err = l.s.each(ctx, l.s.db, "index", func(r *sql.Rows) error {
		var seq uint64
		var raw []byte
		if err := r.Scan(&seq, &raw); err != nil {
			return err
		}
		mt, err := storage.DecodeMeta(raw)
		if err != nil {
			return fmt.Errorf("decode meta: %w", err)
		}
		msgs[at[seq]].Ref = mt.Ref
		return nil
	}, `SELECT seq, meta FROM message_meta WHERE conv = ? AND seq IN (`+placeholders(len(events), "?")+`)`,
		append([]any{conv}, anys(events)...)...)
	return msgs, err
}

func (l indexLists) Versions(ctx context.Context, conv string, seq uint64) ([]protocol.Message, error) {
	tx, err := l.s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, l.s.fail("index", err)
	}
	defer func() { _ = tx.Rollback() }()
	var raw []byte
	err = tx.QueryRowContext(ctx, `SELECT meta FROM message_meta WHERE conv = ? AND seq = ?`, conv, seq).Scan(&raw)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, l.s.fail("index", err)
	}
	mt, err := storage.DecodeMeta(raw)
	if err != nil || mt.Recalled {
		return nil, err
	}
	seqs := append([]uint64{seq}, mt.Edits...)
	msgs, err := l.s.messages(ctx, tx, "index", len(seqs), `SELECT `+messageCols+` FROM `+l.s.table(conv)+`
		WHERE conv = ? AND seq IN (`+placeholders(len(seqs), "?")+`) ORDER BY seq`, append([]any{conv}, anys(seqs)...)...)
	if err != nil || len(msgs) != len(seqs) {
		return nil, err // a message or an edit gone: none
	}
	for i := range msgs[1:] {
		msgs[1+i].ContentType = msgs[0].ContentType // an edit's body has its target's type
	}
	return msgs, nil
}

// listRows is how many lists one INSERT carries.
const listRows = 500

func (l indexLists) Add(ctx context.Context, conv string, postings map[fulltext.ListKey][]byte, refs []fulltext.FileRef, progress uint64) error {
	return l.AddBatch(ctx, []fulltext.Write{{Conv: conv, Postings: postings, Refs: refs, Progress: progress}})
}

var _ fulltext.BatchLists = indexLists{}

// AddBatch implements fulltext.BatchLists: one transaction for every
// conversation of ws (the indexer's pass wrote one per conversation: about
// 40 % of MariaDB's commits under the cluster bench).
func (l indexLists) AddBatch(ctx context.Context, ws []fulltext.Write) error {
	return l.s.tx(ctx, "index", func(tx *sql.Tx) error {
		rows := &insertRows{ctx: ctx, tx: tx}
		// The progress before: which bucket each conversation had open,
		// and how many passes wrote parts since its parts were folded.
		convs := make([]any, len(ws))
		for i, w := range ws {
			convs[i] = w.Conv
		}
		before := make(map[string]uint64, len(ws))
		passes := make(map[string]uint32, len(ws))
		err := l.s.each(ctx, tx, "index", func(r *sql.Rows) error {
			var conv string
			var seq uint64
			var n uint32
			if err := r.Scan(&conv, &seq, &n); err != nil {
				return err
			}
			before[conv], passes[conv] = seq, n
			return nil
		}, `SELECT conv, seq, passes FROM search_progress WHERE conv IN (`+placeholders(len(convs), "?")+`)`, convs...)
		if err != nil {
			return err
		}
		for _, w := range ws {
			for _, r := range w.Refs {
				if err := rows.add(insertRefs, r.Sum[:], w.Conv, r.Seq); err != nil {
					return err
				}
			}
		}
		if err := rows.flush(insertRefs); err != nil {
			return err
		}
		// Buckets already left: their rows; the open one: a part.
		open := make([]uint64, len(ws)) // each conversation's open bucket after the pass
		for i, w := range ws {
			open[i] = fulltext.Bucket(max(before[w.Conv], w.Progress))
			for k, list := range w.Postings {
				if k.Bucket < open[i] {
					if err := rows.add(insertLists, w.Conv, k.Bucket, uint64(k.Gram), list); err != nil {
						return err
					}
				}
			}
		}
		if err := rows.flush(insertLists); err != nil {
			return err
		}
		parted := make(map[string]bool, len(ws)) // conversations given parts by this pass
		for i, w := range ws {
			for k, list := range w.Postings {
				if k.Bucket >= open[i] {
					parted[w.Conv] = true
					if err := rows.add(insertParts, w.Conv, k.Bucket, uint64(k.Gram), w.Progress, list); err != nil {
						return err
					}
				}
			}
		}
		if err := rows.flush(insertParts); err != nil {
			return err
		}
		// Fold the parts of the bucket a conversation left, and of its open
		// one once foldAfter passes gave it parts.
		for i, w := range ws {
			n := passes[w.Conv]
			if old, ok := before[w.Conv]; ok && fulltext.Bucket(old) < open[i] {
				if err := foldParts(ctx, tx, w.Conv, fulltext.Bucket(old)); err != nil {
					return fmt.Errorf("fold bucket %d of %s: %w", fulltext.Bucket(old), w.Conv, err)
				}
				n = 0 // the new bucket's parts are this pass's
			}
			if parted[w.Conv] {
				n++
			}
			if n >= foldAfter {
				if err := foldParts(ctx, tx, w.Conv, open[i]); err != nil {
					return fmt.Errorf("fold bucket %d of %s: %w", open[i], w.Conv, err)
				}
				n = 0
			}
			if err := rows.add(insertProgress, w.Conv, w.Progress, n); err != nil {
				return err
			}
		}
		return rows.flush(insertProgress)
	})
}

// foldAfter is how many passes may give a conversation's open bucket parts
// before they are folded into its rows: a list has at most that many
// parts (about; two nodes may count one pass), so a search reads at most
// that many rows for it, and each row is rewritten once per foldAfter
// passes instead of once a pass.
const foldAfter = 16

// foldParts moves the parts of conv's bucket into its search_lists rows:
// each list's parts, their distinct offsets ascending, appended to its row.
func foldParts(ctx context.Context, tx *sql.Tx, conv string, bucket uint64) error {
	lists := make(map[uint64][]byte) // gram → its parts
	err := func() error {
		rows, err := tx.QueryContext(ctx, `SELECT gram, list FROM search_parts WHERE conv = ? AND bucket = ? FOR UPDATE`, conv, bucket)
		if err != nil {
			return err
		}
		for rows.Next() {
			var g uint64
			var list []byte
			if err := rows.Scan(&g, &list); err != nil {
				_ = rows.Close()
				return err
			}
			lists[g] = append(lists[g], list...)
		}
		return errors.Join(rows.Err(), rows.Close())
	}()
	if err != nil || len(lists) == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM search_parts WHERE conv = ? AND bucket = ?`, conv, bucket); err != nil {
		return err
	}
	rows := &insertRows{ctx: ctx, tx: tx}
	for g, list := range lists {
		if err := rows.add(insertLists, conv, bucket, g, fulltext.CompactPostings(list)); err != nil {
			return err
		}
	}
	return rows.flush(insertLists)
}

// The statements of AddBatch: each is its prefix, rows, then its suffix.
const (
	insertRefs     = `INSERT IGNORE INTO file_refs (sum, conv, seq) VALUES `
	insertLists    = `INSERT INTO search_lists (conv, bucket, gram, list) VALUES `
	insertParts    = `INSERT INTO search_parts (conv, bucket, gram, part, list) VALUES `
	insertProgress = `INSERT INTO search_progress (conv, seq, passes) VALUES `
)

// insertRows gathers the rows of one of those statements at a time and
// runs it with listRows rows, and with the rest at flush: a caller flushes
// a statement before it adds rows of another.
type insertRows struct {
	ctx  context.Context
	tx   *sql.Tx
	args []any
	cols int // values a row of the statement gathered
}

// add adds a row of query's statement, running it once it holds listRows.
func (r *insertRows) add(query string, vals ...any) error {
	r.args, r.cols = append(r.args, vals...), len(vals)
	if len(r.args) < listRows*r.cols {
		return nil
	}
	return r.flush(query)
}

// flush runs query's statement with the rows gathered, if any.
func (r *insertRows) flush(query string) error {
	if len(r.args) == 0 {
		return nil
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", r.cols), ", ") + ")"
	_, err := r.tx.ExecContext(r.ctx, query+placeholders(len(r.args)/r.cols, row)+suffix[query], r.args...)
	r.args = r.args[:0]
	return err
}

var suffix = map[string]string{
	insertLists:    ` ON DUPLICATE KEY UPDATE list = CONCAT(list, VALUES(list))`,
	insertParts:    ` ON DUPLICATE KEY UPDATE list = CONCAT(list, VALUES(list))`,
	insertProgress: ` ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq)), passes = VALUES(passes)`,
}

// Remove takes the offsets out of each list: its search_lists row and its
// parts.
func (l indexLists) Remove(ctx context.Context, conv string, offs map[fulltext.ListKey]map[uint64]bool) error {
	return l.s.tx(ctx, "unindex", func(tx *sql.Tx) error {
		type row struct {
			part uint64 // in search_parts; the search_lists row has none
			list []byte
		}
		for k, o := range offs {
			for _, table := range []string{"search_lists", "search_parts"} {
				part, where := "0", ""
				if table == "search_parts" {
					part, where = "part", " AND part = ?"
				}
				var rows []row
				err := l.s.each(ctx, tx, "unindex", func(r *sql.Rows) error {
					var x row
					if err := r.Scan(&x.part, &x.list); err != nil {
						return err
					}
					rows = append(rows, x)
					return nil
				}, `SELECT `+part+`, list FROM `+table+` WHERE conv = ? AND bucket = ? AND gram = ? FOR UPDATE`, conv, k.Bucket, uint64(k.Gram))
				if err != nil {
					return fmt.Errorf("read list: %w", err)
				}
				for _, x := range rows {
					list := fulltext.RemovePostings(x.list, o)
					args := []any{conv, k.Bucket, uint64(k.Gram)}
					if where != "" {
						args = append(args, x.part)
					}
					switch {
					case len(list) == len(x.list):
						continue // none of the offsets is in it
					case len(list) == 0:
						_, err = tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE conv = ? AND bucket = ? AND gram = ?`+where, args...)
					default:
						_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET list = ? WHERE conv = ? AND bucket = ? AND gram = ?`+where, append([]any{list}, args...)...)
					}
					if err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}

var _ storage.FileRefs = (*Store)(nil)

// FileRefs implements storage.FileRefs: one query.
func (s *Store) FileRefs(ctx context.Context, sums [][32]byte) (map[[32]byte][]storage.MessageRef, error) {
	out := make(map[[32]byte][]storage.MessageRef)
	if len(sums) == 0 {
		return out, nil
	}
	args := make([]any, len(sums))
	for i := range sums {
		args[i] = sums[i][:]
	}
	err := s.each(ctx, s.db, "file refs", func(r *sql.Rows) error {
		var raw []byte
		var ref storage.MessageRef
		if err := r.Scan(&raw, &ref.Conv, &ref.Seq); err != nil {
			return err
		}
		var sum [32]byte
		if len(raw) != len(sum) {
			return fmt.Errorf("file_refs: a sum of %d bytes", len(raw))
		}
		copy(sum[:], raw)
		out[sum] = append(out[sum], ref)
		return nil
	}, `SELECT sum, conv, seq FROM file_refs WHERE sum IN (`+placeholders(len(sums), "?")+`)`, args...)
	return out, err
}
