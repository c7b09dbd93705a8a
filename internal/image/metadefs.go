package image

import (
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// metadefMigrations are the metadata definitions catalog's tables
// (versions 2 and up).
var metadefMigrations []store.Migration

// metadefRoutes registers /v2/metadefs/... and their schemas.
func (s *Service) metadefRoutes(rt *api.Router) {}
