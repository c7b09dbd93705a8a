package imagestore

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/sigv4"
)

// S3 part sizes. S3 refuses parts below 5 MiB (except the last) and above
// 5 GiB, and uploads of more than 10000 parts.
const (
	DefaultS3PartSize = 16 << 20
	minS3PartSize     = 5 << 20
	maxS3PartSize     = 5 << 30
	maxS3Parts        = 10000
)

// abortTimeout bounds the clean-up of a failed upload, which runs even
// when the caller's context is already cancelled.
const abortTimeout = 30 * time.Second

// S3Config configures an S3 store.
type S3Config struct {
	// ID is the store id shown in /v2/info/stores.
	ID string
	// Endpoint is the base URL of the S3 service, e.g.
	// https://s3.eu-west-1.amazonaws.com or http://minio:9000. Buckets are
	// addressed path-style (Endpoint/bucket/key), which every
	// S3-compatible service supports.
	Endpoint string
	// Region is signed into every request; "us-east-1" when empty.
	Region string
	// Bucket holds the images; it must exist.
	Bucket string
	// AccessKey and SecretKey are the SigV4 credentials.
	AccessKey string
	SecretKey string
	// Prefix is put before the image id to make the object key.
	Prefix string
	// PartSize is the multipart upload part size, and the memory one Put
	// uses; DefaultS3PartSize when 0.
	PartSize int64
	// HTTPClient sends the requests; http.DefaultClient when nil.
	HTTPClient *http.Client
}

// S3 stores images as objects in an S3 bucket. It speaks the S3 REST API
// itself, signing with SigV4, so that any S3-compatible service (AWS,
// Ceph RGW, MinIO…) works without an SDK.
type S3 struct {
	cfg      S3Config
	endpoint *url.URL
	client   *http.Client
	now      func() time.Time // for tests
}

var _ Store = (*S3)(nil)

// NewS3 returns an S3 store. It does not contact the service.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.ID == "" {
		return nil, errors.New("s3 store: id is required")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3 store: bucket is required")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("s3 store: access key and secret key are required")
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("s3 store: endpoint: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("s3 store: endpoint %q is not an http(s) URL", cfg.Endpoint)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("s3 store: endpoint %q must not have a query, fragment or userinfo", cfg.Endpoint)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultS3PartSize
	}
	if cfg.PartSize < minS3PartSize || cfg.PartSize > maxS3PartSize {
		return nil, fmt.Errorf("s3 store: part size %d outside [%d, %d]", cfg.PartSize, minS3PartSize, maxS3PartSize)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	return &S3{cfg: cfg, endpoint: u, client: client, now: time.Now}, nil
}

// ID implements Store.
func (s *S3) ID() string { return s.cfg.ID }

// Description implements Store.
func (s *S3) Description() string {
	return fmt.Sprintf("S3 bucket %s at %s", s.cfg.Bucket, s.endpoint.Host)
}

// ReadOnly implements Store.
func (s *S3) ReadOnly() bool { return false }

// location returns the Location of key.
func (s *S3) location(key string) Location {
	u := url.URL{Scheme: "s3", Host: s.cfg.Bucket, Path: "/" + key}
	return Location{Store: s.cfg.ID, URL: u.String()}
}

// keyOf returns the object key of loc, refusing locations of other buckets.
func (s *S3) keyOf(loc Location) (string, error) {
	u, err := url.Parse(loc.URL)
	if err != nil {
		return "", fmt.Errorf("parse location %q: %w", loc.URL, err)
	}
	if u.Scheme != "s3" || u.Host != s.cfg.Bucket {
		return "", fmt.Errorf("location %q is not in s3://%s", loc.URL, s.cfg.Bucket)
	}
	key := strings.TrimPrefix(u.Path, "/")
	if key == "" {
		return "", fmt.Errorf("location %q has no key", loc.URL)
	}
	return key, nil
}

// Put implements Store. Data smaller than one part goes in a single PUT;
// anything larger is a multipart upload streamed one part at a time through
// a single buffer, aborted on any failure so that no parts are left behind.
func (s *S3) Put(ctx context.Context, imageID string, r io.Reader) (Location, int64, error) {
	if imageID == "" {
		return Location{}, 0, errors.New("s3 put: empty image id")
	}
	key := s.cfg.Prefix + imageID
	buf := make([]byte, s.cfg.PartSize)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if err := s.putObject(ctx, key, buf[:n]); err != nil {
			return Location{}, 0, fmt.Errorf("s3 put %s: %w", key, err)
		}
		return s.location(key), int64(n), nil
	case err != nil:
		return Location{}, 0, fmt.Errorf("s3 put %s: read image data: %w", key, err)
	}

	uploadID, err := s.createMultipart(ctx, key)
	if err != nil {
		return Location{}, 0, fmt.Errorf("s3 put %s: %w", key, err)
	}
	size, err := s.uploadParts(ctx, key, uploadID, buf, r)
	if err != nil {
		// Abort even when ctx is done: a dangling upload keeps its parts,
		// and the bill for them, forever.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if aerr := s.abortMultipart(actx, key, uploadID); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort upload: %w", aerr))
		}
		return Location{}, 0, fmt.Errorf("s3 put %s: %w", key, err)
	}
	return s.location(key), size, nil
}

// uploadParts uploads buf (already full) as part 1, then the rest of r,
// and completes the upload.
func (s *S3) uploadParts(ctx context.Context, key, uploadID string, buf []byte, r io.Reader) (int64, error) {
	var parts []completedPart
	size := int64(0)
	chunk := buf
	for {
		if len(parts) == maxS3Parts {
			return 0, fmt.Errorf("image exceeds %d parts of %d bytes", maxS3Parts, len(buf))
		}
		etag, err := s.uploadPart(ctx, key, uploadID, len(parts)+1, chunk)
		if err != nil {
			return 0, err
		}
		parts = append(parts, completedPart{PartNumber: len(parts) + 1, ETag: etag})
		size += int64(len(chunk))
		if len(chunk) < len(buf) {
			break
		}
		n, err := io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("read image data: %w", err)
		}
		chunk = buf[:n]
	}
	if err := s.completeMultipart(ctx, key, uploadID, parts); err != nil {
		return 0, err
	}
	return size, nil
}

func (s *S3) putObject(ctx context.Context, key string, data []byte) error {
	resp, err := s.do(ctx, http.MethodPut, key, nil, nil, data)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return s3ResponseError("put object", resp)
	}
	return nil
}

type initiateMultipartUploadResult struct {
	UploadID string `xml:"UploadId"`
}

func (s *S3) createMultipart(ctx context.Context, key string) (string, error) {
	resp, err := s.do(ctx, http.MethodPost, key, url.Values{"uploads": {""}}, nil, nil)
	if err != nil {
		return "", err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", s3ResponseError("create multipart upload", resp)
	}
	var res initiateMultipartUploadResult
	if err := xml.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return "", fmt.Errorf("create multipart upload: decode response: %w", err)
	}
	if res.UploadID == "" {
		return "", errors.New("create multipart upload: no upload id in response")
	}
	return res.UploadID, nil
}

func (s *S3) uploadPart(ctx context.Context, key, uploadID string, number int, data []byte) (string, error) {
	q := url.Values{"partNumber": {strconv.Itoa(number)}, "uploadId": {uploadID}}
	resp, err := s.do(ctx, http.MethodPut, key, q, nil, data)
	if err != nil {
		return "", err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", s3ResponseError(fmt.Sprintf("upload part %d", number), resp)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		return "", fmt.Errorf("upload part %d: no etag in response", number)
	}
	return etag, nil
}

type completedPart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
}

type completeMultipartUpload struct {
	XMLName xml.Name        `xml:"CompleteMultipartUpload"`
	Parts   []completedPart `xml:"Part"`
}

func (s *S3) completeMultipart(ctx context.Context, key, uploadID string, parts []completedPart) error {
	body, err := xml.Marshal(completeMultipartUpload{Parts: parts})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	h := http.Header{"Content-Type": {"application/xml"}}
	resp, err := s.do(ctx, http.MethodPost, key, url.Values{"uploadId": {uploadID}}, h, body)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return s3ResponseError("complete multipart upload", resp)
	}
	// S3 may fail a completion after sending 200 (it keeps the connection
	// alive with whitespace meanwhile), reporting it in the body.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("complete multipart upload: read response: %w", err)
	}
	var root struct {
		XMLName xml.Name
		s3ErrorBody
	}
	if err := xml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("complete multipart upload: decode response: %w", err)
	}
	if root.XMLName.Local == "Error" {
		return &S3Error{Op: "complete multipart upload", Status: resp.StatusCode, Code: root.Code, Message: root.Message}
	}
	return nil
}

func (s *S3) abortMultipart(ctx context.Context, key, uploadID string) error {
	resp, err := s.do(ctx, http.MethodDelete, key, url.Values{"uploadId": {uploadID}}, nil, nil)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return nil
	}
	return s3ResponseError("abort multipart upload", resp)
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, loc Location, offset, length int64) (io.ReadCloser, error) {
	key, err := s.keyOf(loc)
	if err != nil {
		return nil, fmt.Errorf("s3 get: %w", err)
	}
	rc, err := rangedGet(offset, length, func(h http.Header) (*http.Response, error) {
		return s.do(ctx, http.MethodGet, key, nil, h, nil)
	}, func(resp *http.Response) error {
		return s3ResponseError("get object", resp)
	})
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	return rc, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, loc Location) error {
	key, err := s.keyOf(loc)
	if err != nil {
		return fmt.Errorf("s3 delete: %w", err)
	}
	resp, err := s.do(ctx, http.MethodDelete, key, nil, nil, nil)
	if err != nil {
		return fmt.Errorf("s3 delete %s: %w", key, err)
	}
	defer drainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		return nil
	}
	err = s3ResponseError("delete object", resp)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return fmt.Errorf("s3 delete %s: %w", key, err)
}

// S3Error is an error answer from the S3 service.
type S3Error struct {
	Op      string // what the store was doing, e.g. "upload part 2"
	Status  int    // HTTP status
	Code    string // S3 error code, e.g. NoSuchKey
	Message string // S3's explanation
}

func (e *S3Error) Error() string {
	msg := fmt.Sprintf("%s: s3 status %d", e.Op, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is maps S3 error codes to the store's sentinels.
func (e *S3Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		// A missing bucket is a misconfiguration, not missing data.
		return e.Code == "NoSuchKey" || (e.Status == http.StatusNotFound && e.Code == "")
	case ErrFull:
		switch e.Code {
		case "QuotaExceeded", "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded":
			return true
		}
	}
	return false
}

type s3ErrorBody struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// s3ResponseError builds an S3Error from an error response.
func s3ResponseError(op string, resp *http.Response) error {
	var body s3ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = xml.Unmarshal(b, &body) // HEAD and some proxies send no XML
	return &S3Error{Op: op, Status: resp.StatusCode, Code: body.Code, Message: body.Message}
}

// drainClose reads a little of what is left so the connection can be
// reused, then closes.
func drainClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	rc.Close()
}

// do sends one signed request for key.
func (s *S3) do(ctx context.Context, method, key string, query url.Values, header http.Header, body []byte) (*http.Response, error) {
	path := strings.TrimSuffix(s.endpoint.EscapedPath(), "/") + "/" + sigv4.Escape(s.cfg.Bucket, false) + "/" + sigv4.Escape(key, false)
	rawQuery := sigv4.CanonicalQuery(query)
	u := *s.endpoint
	u.RawQuery = rawQuery
	var err error
	u.Path, err = url.PathUnescape(path)
	if err != nil {
		return nil, fmt.Errorf("build url: %w", err)
	}
	u.RawPath = path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body = http.NoBody
	}
	req.ContentLength = int64(len(body))
	for k, v := range header {
		req.Header[k] = v
	}
	s.sign(req, body)
	return s.client.Do(req)
}

// sign adds SigV4 headers to req.
func (s *S3) sign(req *http.Request, body []byte) {
	signer := sigv4.Signer{
		Credentials: sigv4.Credentials{AccessKeyID: s.cfg.AccessKey, SecretAccessKey: s.cfg.SecretKey},
		Region:      s.cfg.Region,
		Service:     "s3",
		S3:          true,
	}
	signer.Sign(req, sigv4.PayloadHash(body), s.now())
}
