package store

// TableDef describes the DynamoDB table.
type TableDef struct {
	HashKey      string
	TTLAttribute string
	GSIs         []GSI
}

// GSI is a global secondary index projecting all attributes.
type GSI struct {
	Name     string
	HashKey  string
	RangeKey string
	// RangeType is "S" or "N".
	RangeType string
}

// Index and attribute names of the table.
const (
	indexByKind   = "byKind"
	indexByStatus = "byStatus"
	indexByExpiry = "byExpiry"

	attrKind           = "kind"
	attrID             = "id"
	attrStatus         = "status"
	attrRegion         = "region"
	attrExpiresAtEpoch = "expiresAtEpoch"

	// kindMEC is the kind of MEC items (the byKind index lists them).
	kindMEC = "mec"
)

// Table is the single table: one item per MEC plus the name-claim,
// idempotency and command-wait items that keep writes transactional.
var Table = TableDef{
	HashKey:      "pk",
	TTLAttribute: "ttl",
	GSIs: []GSI{
		// Listing every MEC, newest first (ids sort by creation time).
		{Name: indexByKind, HashKey: attrKind, RangeKey: attrID, RangeType: "S"},
		// Listing by status.
		{Name: indexByStatus, HashKey: attrStatus, RangeKey: attrID, RangeType: "S"},
		// The sweeper: MECs of a status whose expiry has passed (sparse: only MECs with an expiry).
		{Name: indexByExpiry, HashKey: attrStatus, RangeKey: attrExpiresAtEpoch, RangeType: "N"},
	},
}
