// Package fernet implements Fernet authenticated encryption (the public
// Fernet spec, version 0x80) together with a Keystone-compatible key
// repository and key rotation.
//
// Nimbus identity issues stateless tokens the way Keystone's Fernet token
// provider does: the token payload is serialised elsewhere and handed to
// this package as opaque bytes. This package owns the cryptography, the
// on-disk key repository (Setup, Rotate, Load) and a Keyring that a running
// server uses to encrypt and decrypt without touching the disk.
//
// # Token format
//
// A token is base64url(0x80 ‖ timestamp ‖ IV ‖ ciphertext ‖ HMAC) where the
// timestamp is big-endian seconds since the Unix epoch, the ciphertext is
// AES-128-CBC with PKCS#7 padding, and the HMAC is HMAC-SHA256 over every
// preceding byte. Like Keystone, Encrypt strips the trailing '=' padding;
// Decrypt accepts tokens with or without it.
//
// # Errors
//
// Decrypt reports every malformed, tampered or unknown-key token as
// ErrInvalidToken, so callers cannot accidentally expose a decryption
// oracle by returning different messages. ErrExpired is returned only for
// authentic tokens whose age exceeds the caller's ttl; the HMAC is always
// checked before the timestamp is trusted.
package fernet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
	"time"
)

// Version is the only Fernet format version this package produces and accepts.
const Version = 0x80

// MaxClockSkew is how far in the future a token's timestamp may lie before
// Decrypt rejects it (when a ttl is given). It absorbs clock differences
// between the node that issued a token and the node validating it; the
// value matches the reference implementations.
const MaxClockSkew = 60 * time.Second

// MaxTokenLen bounds the length of a token string Decrypt will look at, so
// a hostile header cannot make the hot path allocate unbounded memory.
// Keystone tokens are a few hundred bytes.
const MaxTokenLen = 64 << 10

const (
	keyLen       = 32 // signing key ‖ encryption key
	halfKeyLen   = 16
	timestampLen = 8
	ivLen        = aes.BlockSize
	macLen       = sha256.Size
	headerLen    = 1 + timestampLen + ivLen
	// minTokenLen is the decoded size of a token carrying an empty
	// message: header, one block of pure padding, HMAC.
	minTokenLen = headerLen + aes.BlockSize + macLen
)

var (
	// ErrInvalidToken is returned for any token that is malformed, was
	// tampered with, was signed by a key not in the key set, or carries a
	// timestamp too far in the future. The cases are deliberately not
	// distinguished.
	ErrInvalidToken = errors.New("fernet: invalid token")

	// ErrExpired is returned for an authentic token older than the ttl
	// passed to Decrypt.
	ErrExpired = errors.New("fernet: token expired")
)

// Strict decoders reject non-zero trailing bits, so every token has exactly
// one unpadded and one padded spelling. They are package variables because
// Encoding.Strict returns a freshly allocated copy.
var (
	rawURL    = base64.RawURLEncoding.Strict()
	paddedURL = base64.URLEncoding.Strict()
)

// Key is a Fernet key: a 128-bit HMAC-SHA256 signing key followed by a
// 128-bit AES encryption key. A Key is safe for concurrent use; it caches
// the expanded AES key schedule and a pool of keyed HMAC states so that
// Decrypt does not redo that work per token.
type Key struct {
	raw   [keyLen]byte
	block cipher.Block // AES-128 with raw[16:]; read-only after creation
	macs  sync.Pool    // of hash.Hash: HMAC-SHA256 keyed with raw[:16]
}

// NewKey builds a Key from its 32 raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != keyLen {
		return nil, fmt.Errorf("fernet: key must be %d bytes, got %d", keyLen, len(raw))
	}
	k := &Key{}
	copy(k.raw[:], raw)
	block, err := aes.NewCipher(k.raw[halfKeyLen:])
	if err != nil {
		return nil, fmt.Errorf("fernet: %w", err)
	}
	k.block = block
	signing := k.raw[:halfKeyLen]
	k.macs.New = func() any { return hmac.New(sha256.New, signing) }
	return k, nil
}

// GenerateKey returns a new random Key.
func GenerateKey() (*Key, error) {
	var raw [keyLen]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("fernet: generate key: %w", err)
	}
	return NewKey(raw[:])
}

// ParseKey decodes a key in the format Keystone and the reference
// implementations write: url-safe base64 of 32 bytes, normally with '='
// padding. Unpadded input and surrounding whitespace (a trailing newline
// added by an editor) are accepted.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	enc := rawURL
	if strings.HasSuffix(s, "=") {
		enc = paddedURL
	}
	if strings.ContainsAny(s, "\r\n") {
		// The base64 decoder silently skips line breaks; a key never has them.
		return nil, errors.New("fernet: key is not url-safe base64")
	}
	raw, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("fernet: key is not url-safe base64")
	}
	return NewKey(raw)
}

// Encode returns the key in the repository file format: padded url-safe
// base64, exactly as Keystone's Fernet.generate_key writes it.
func (k *Key) Encode() string {
	return base64.URLEncoding.EncodeToString(k.raw[:])
}

// Equal reports whether k and other hold the same key material.
func (k *Key) Equal(other *Key) bool {
	if k == nil || other == nil {
		return k == other
	}
	return subtle.ConstantTimeCompare(k.raw[:], other.raw[:]) == 1
}

// String redacts the key so that logging a Key or a struct holding one
// never leaks key material. Use Encode to serialise it deliberately.
func (k *Key) String() string { return "fernet.Key(redacted)" }

// GoString redacts the key for %#v as well.
func (k *Key) GoString() string { return k.String() }

// appendMAC appends HMAC-SHA256(signing key, msg) to dst. With enough
// spare capacity in dst it does not allocate.
func (k *Key) appendMAC(dst, msg []byte) []byte {
	h := k.macs.Get().(hash.Hash)
	h.Write(msg)
	dst = h.Sum(dst)
	h.Reset()
	k.macs.Put(h)
	return dst
}

// CBC mode is done here over the cached cipher.Block rather than with
// cipher.NewCBCEncrypter/NewCBCDecrypter because, for AES, those copy the
// whole expanded key schedule (~0.5 KiB) into a fresh allocation per
// token, which was most of Decrypt's garbage. The loops are the textbook
// definition of CBC and are pinned by the spec test vectors.

// encryptCBC encrypts pt, a whole number of blocks, in place.
func (k *Key) encryptCBC(pt, iv []byte) {
	prev := iv
	for start := 0; start < len(pt); start += aes.BlockSize {
		blk := pt[start : start+aes.BlockSize]
		subtle.XORBytes(blk, blk, prev)
		k.block.Encrypt(blk, blk)
		prev = blk
	}
}

// decryptCBC decrypts ct, a whole number of blocks, in place. It walks the
// blocks from last to first so that each block's predecessor is still
// ciphertext when it is needed.
func (k *Key) decryptCBC(ct, iv []byte) {
	for end := len(ct); end > 0; end -= aes.BlockSize {
		start := end - aes.BlockSize
		prev := iv
		if start > 0 {
			prev = ct[start-aes.BlockSize : start]
		}
		blk := ct[start:end]
		k.block.Decrypt(blk, blk)
		subtle.XORBytes(blk, blk, prev)
	}
}

// Encrypt seals plaintext under key with a fresh random IV, stamping the
// token with now. The result is unpadded url-safe base64, as Keystone
// emits it.
func Encrypt(key *Key, plaintext []byte, now time.Time) (string, error) {
	var iv [ivLen]byte
	if _, err := rand.Read(iv[:]); err != nil {
		return "", fmt.Errorf("fernet: generate iv: %w", err)
	}
	return encrypt(key, plaintext, now, iv)
}

// encrypt is Encrypt with a caller-chosen IV, for the spec test vectors.
func encrypt(key *Key, plaintext []byte, now time.Time, iv [ivLen]byte) (string, error) {
	if key == nil {
		return "", errors.New("fernet: encrypt: nil key")
	}
	ts := now.Unix()
	if ts < 0 {
		return "", fmt.Errorf("fernet: encrypt: timestamp %v is before the Unix epoch", now)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	ctLen := len(plaintext) + pad
	signedLen := headerLen + ctLen
	buf := make([]byte, signedLen, signedLen+macLen)

	buf[0] = Version
	binary.BigEndian.PutUint64(buf[1:], uint64(ts))
	copy(buf[1+timestampLen:], iv[:])
	ct := buf[headerLen:]
	copy(ct, plaintext)
	for i := len(plaintext); i < ctLen; i++ {
		ct[i] = byte(pad)
	}
	key.encryptCBC(ct, iv[:])
	buf = key.appendMAC(buf, buf)
	return rawURL.EncodeToString(buf), nil
}

// Decrypt verifies token against each key in turn and returns the
// plaintext and the time the token was issued.
//
// keys are tried in order, so put the likeliest first (KeySet.Keys is
// already ordered that way). If ttl > 0 the token must be no older than
// ttl at now (else ErrExpired) and no more than MaxClockSkew in the future
// (else ErrInvalidToken). If ttl <= 0 no time check is made; Keystone
// works this way, enforcing expiry from the payload, and the issue time is
// returned so callers can apply their own policy.
//
// Every other failure is ErrInvalidToken. The HMAC is verified, in
// constant time, before the timestamp or ciphertext are used, so
// ErrExpired is never reported for a forged token. On ErrExpired the issue
// time is returned alongside the error.
func Decrypt(keys []*Key, token string, ttl time.Duration, now time.Time) ([]byte, time.Time, error) {
	// The base64 decoder skips line breaks; refuse them so that a token
	// has no alternative spellings.
	if len(token) > MaxTokenLen || strings.IndexByte(token, '\n') >= 0 || strings.IndexByte(token, '\r') >= 0 {
		return nil, time.Time{}, ErrInvalidToken
	}
	enc := rawURL
	if strings.HasSuffix(token, "=") {
		enc = paddedURL
	}
	// One buffer holds the decoded token and, in its spare capacity, the
	// recomputed HMAC; the plaintext is decrypted in place and returned as
	// a sub-slice, so a valid token costs a single allocation here.
	buf := make([]byte, enc.DecodedLen(len(token))+macLen)
	n, err := enc.Decode(buf, []byte(token))
	if err != nil || n < minTokenLen || (n-headerLen-macLen)%aes.BlockSize != 0 || buf[0] != Version {
		return nil, time.Time{}, ErrInvalidToken
	}
	signed, tag, scratch := buf[:n-macLen], buf[n-macLen:n], buf[n:n:n+macLen]

	var key *Key
	for _, k := range keys {
		if k != nil && hmac.Equal(k.appendMAC(scratch, signed), tag) {
			key = k
			break
		}
	}
	if key == nil {
		return nil, time.Time{}, ErrInvalidToken
	}

	ts := binary.BigEndian.Uint64(buf[1:])
	if ts > math.MaxInt64 {
		return nil, time.Time{}, ErrInvalidToken
	}
	issued := time.Unix(int64(ts), 0)
	if ttl > 0 {
		if issued.Sub(now) > MaxClockSkew {
			return nil, time.Time{}, ErrInvalidToken
		}
		if now.Sub(issued) > ttl {
			return nil, issued, ErrExpired
		}
	}

	ct := signed[headerLen:]
	key.decryptCBC(ct, signed[1+timestampLen:headerLen])
	// The HMAC already proved the ciphertext came from a key holder, so a
	// padding failure here is not an oracle; it means a buggy encrypter.
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, time.Time{}, ErrInvalidToken
	}
	for _, b := range ct[len(ct)-pad:] {
		if int(b) != pad {
			return nil, time.Time{}, ErrInvalidToken
		}
	}
	m := len(ct) - pad
	return ct[:m:m], issued, nil
}
