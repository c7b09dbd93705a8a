package proxy

import (
	"fmt"
	"math/big"
	"net/http"
	"strconv"
)

// expiringObjectsAccount is the hidden account whose containers queue
// objects for the expirer, as in Swift.
const expiringObjectsAccount = ".expiring_objects"

// expirerUpdates names, per slot, where the object server queues the
// object for the expirer: the .expiring_objects container of its
// X-Delete-At (X-Delete-At-Container) and that container's servers
// (X-Delete-At-Host, -Partition, -Device). The container is Swift's
// get_expirer_container: the delete-at time rounded down to the divisor,
// less a shard of 0..99 from the object's hash, so one busy day is spread
// over a hundred containers.
func (p *Proxy) expirerUpdates(slots []http.Header, deleteAt string, names [3]string) {
	at, err := strconv.ParseInt(deleteAt, 10, 64)
	if err != nil {
		return
	}
	sum := p.rings.object.Hash(names[0], names[1], names[2])
	shard := new(big.Int).Mod(new(big.Int).SetBytes(sum[:]), big.NewInt(100)).Int64()
	div := p.cfg.ExpiringObjectsDivisor
	cont := max(at/div*div-shard, 0)
	name := fmt.Sprintf("%010d", cont)
	for _, h := range slots {
		h.Set("X-Delete-At-Container", name)
	}
	spreadUpdates(slots, "X-Delete-At", place(p.rings.container, expiringObjectsAccount, name, ""))
}
