package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/linkharvest/linkharvest/internal/settings"
)

// s3Sink keeps objects in a bucket under a prefix.
type s3Sink struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "a/b/" (with the trailing slash)
	sse      types.ServerSideEncryption
	kmsKeyID string
}

// defaultRegion is used when the chain gives none: S3-compatible stores
// (MinIO) ignore it, but the SDK refuses to sign without one.
const defaultRegion = "us-east-1"

// S3Options are the sink's own S3 settings; the rest (region, endpoint,
// credentials) comes from the AWS SDK's default chain.
type S3Options struct {
	// ForcePathStyle addresses buckets as a path (MinIO and other
	// S3-compatible stores): S3_FORCE_PATH_STYLE.
	ForcePathStyle bool
	// SSE is the server-side encryption of every object: S3_SSE.
	SSE types.ServerSideEncryption
	// KMSKeyID is the KMS key for aws:kms (default the account's): S3_SSE_KMS_KEY_ID.
	KMSKeyID string
}

// S3OptionsFromEnv reads S3_FORCE_PATH_STYLE, S3_SSE and S3_SSE_KMS_KEY_ID
// strictly: a bad value is an error naming the variable.
func S3OptionsFromEnv(getenv func(string) string) (S3Options, error) {
	var o S3Options
	var err error
	if o.ForcePathStyle, err = settings.Bool(getenv, "S3_FORCE_PATH_STYLE", false); err != nil {
		return o, err
	}
	switch v := types.ServerSideEncryption(strings.TrimSpace(getenv("S3_SSE"))); v {
	case "":
	case types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse:
		o.SSE = v
	default:
		return o, settings.Bad("S3_SSE", string(v), "want AES256, aws:kms or aws:kms:dsse")
	}
	o.KMSKeyID = strings.TrimSpace(getenv("S3_SSE_KMS_KEY_ID"))
	if o.KMSKeyID != "" && o.SSE != types.ServerSideEncryptionAwsKms && o.SSE != types.ServerSideEncryptionAwsKmsDsse {
		return o, settings.Bad("S3_SSE_KMS_KEY_ID", o.KMSKeyID, "needs S3_SSE=aws:kms or aws:kms:dsse")
	}
	return o, nil
}

func openS3(ctx context.Context, bucket, prefix string, opts S3Options) (*Sink, error) {
	if bucket == "" {
		return nil, errors.New("sink: s3 URL without a bucket (want s3://bucket/prefix)")
	}
	s := &s3Sink{bucket: bucket, sse: opts.SSE, kmsKeyID: opts.KMSKeyID}
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return nil, fmt.Errorf("sink: s3 prefix: %w", err)
		}
		s.prefix = prefix + "/"
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("sink: loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts.ForcePathStyle
		// A multipart object (PutStream) has no whole-object checksum to
		// check on Get; the SDK would log a warning for each such read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return &Sink{b: s, url: u}, nil
}

func (s *s3Sink) check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	return err
}

func (s *s3Sink) put(ctx context.Context, key string, body []byte, contentType string) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	// A gzip data object is NDJSON stored gzip-encoded: say so, so tools
	// that honour Content-Encoding see the type of the content. (The AWS
	// SDKs and CLIs hand back the stored bytes whatever this says.)
	if strings.HasSuffix(key, ".gz") && len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b {
		in.ContentEncoding = aws.String("gzip")
	}
	if s.sse != "" {
		in.ServerSideEncryption = s.sse
		if s.kmsKeyID != "" {
			in.SSEKMSKeyId = aws.String(s.kmsKeyID)
		}
	}
	_, err := s.client.PutObject(ctx, in)
	return err
}

// putStream uploads r in parts (multipart when it exceeds one part), so
// memory stays at a few parts whatever the size. On an error the upload is
// aborted and no object (or the old one) remains. manager is the SDK's v1
// uploader; its successor, feature/s3/transfermanager, is not yet at v1.
func (s *s3Sink) putStream(ctx context.Context, key string, r io.Reader, contentType string) error {
	in := &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key), Body: r}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if s.sse != "" {
		in.ServerSideEncryption = s.sse
		if s.kmsKeyID != "" {
			in.SSEKMSKeyId = aws.String(s.kmsKeyID)
		}
	}
	up := manager.NewUploader(s.client, func(u *manager.Uploader) {
		u.PartSize = streamPartSize
		u.Concurrency = 2
	})
	_, err := up.Upload(ctx, in)
	return err
}

// streamPartSize bounds PutStream's memory (about Concurrency+1 parts);
// with S3's 10,000 parts it allows objects of 80 GB.
const streamPartSize = 8 << 20

func (s *s3Sink) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	defer out.Body.Close()
	n := int64(0)
	if out.ContentLength != nil {
		n = *out.ContentLength
	}
	buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, fmt.Errorf("reading the object: %w", err)
	}
	return buf.Bytes(), nil
}

// delete is idempotent: S3 answers a delete of a missing key with success.
func (s *s3Sink) delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	return err
}

func (s *s3Sink) list(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var objs []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			info := ObjectInfo{Key: key, Size: aws.ToInt64(o.Size)}
			if o.LastModified != nil {
				info.LastModified = *o.LastModified
			}
			objs = append(objs, info)
		}
	}
	return objs, nil
}
