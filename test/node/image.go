package node

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// ErrImageNotFound is returned when no loaded archive holds an image.
var ErrImageNotFound = errors.New("image not found in the node's archives")

// ImageArchive is an OCI archive (a tar of an OCI image layout) the agent
// serves images from. ExtraRefs give the archive's image more names, so one
// archive can stand for several tags (vaultsync:dev and vaultsync:dev2).
type ImageArchive struct {
	Path      string
	ExtraRefs []string
}

// Image is an image ready to run: its unpacked root filesystem (shared,
// never written: containers get an overlay on top) and its configuration.
type Image struct {
	// Ref is the canonical name it was found by (vaultsync:dev).
	Ref string
	// ID is the digest of the image configuration (sha256:...), as
	// `crictl images` shows it; ManifestDigest names the manifest.
	ID             string
	ManifestDigest string
	Config         ocispec.ImageConfig
	// RootFS is the unpacked root filesystem.
	RootFS string
}

// NormalizeRef turns the spellings of a local image name into one form:
// "localhost/", "docker.io/library/" and "docker.io/" prefixes go, and a
// missing tag becomes ":latest". A digest reference is kept as it is.
func NormalizeRef(ref string) string {
	ref = strings.TrimSpace(ref)
	for _, p := range []string{"docker.io/library/", "index.docker.io/library/", "docker.io/", "localhost/"} {
		if strings.HasPrefix(ref, p) {
			ref = strings.TrimPrefix(ref, p)
			break
		}
	}
	if strings.Contains(ref, "@") {
		return ref
	}
	if i := strings.LastIndex(ref, ":"); i < 0 || strings.Contains(ref[i:], "/") {
		ref += ":latest"
	}
	return ref
}

// imageStore loads OCI archives into a layout directory of its own and
// unpacks images on first use.
type imageStore struct {
	dir string // <state>/images

	mu     sync.Mutex
	refs   map[string]imageRef // canonical ref -> where it lives
	loaded map[string]*Image   // manifest digest -> unpacked image
}

type imageRef struct {
	layout   string // directory of the extracted OCI layout
	manifest ocispec.Descriptor
}

func newImageStore(dir string) *imageStore {
	return &imageStore{dir: dir, refs: map[string]imageRef{}, loaded: map[string]*Image{}}
}

// Load extracts an archive and records the names of its images.
func (s *imageStore) Load(a ImageArchive) ([]string, error) {
	sum, err := fileDigest(a.Path)
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(s.dir, "archives", sum[:16])
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		tmp := layout + ".tmp"
		_ = os.RemoveAll(tmp)
		if err := extractPlain(a.Path, tmp); err != nil {
			return nil, fmt.Errorf("reading OCI archive %s: %w", a.Path, err)
		}
		if err := os.Rename(tmp, layout); err != nil {
			return nil, err
		}
	}
	manifests, err := layoutManifests(layout)
	if err != nil {
		return nil, fmt.Errorf("OCI archive %s: %w", a.Path, err)
	}
	if len(manifests) == 0 {
		return nil, fmt.Errorf("OCI archive %s holds no image manifest", a.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, m := range manifests {
		for _, n := range refNames(m) {
			s.refs[NormalizeRef(n)] = imageRef{layout: layout, manifest: m}
			names = append(names, NormalizeRef(n))
		}
	}
	for _, n := range a.ExtraRefs {
		s.refs[NormalizeRef(n)] = imageRef{layout: layout, manifest: manifests[0]}
		names = append(names, NormalizeRef(n))
	}
	return names, nil
}

// refNames are the names an index entry carries.
func refNames(d ocispec.Descriptor) []string {
	var out []string
	for _, k := range []string{ocispec.AnnotationRefName, "io.containerd.image.name"} {
		if v := d.Annotations[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Get returns the unpacked image of a Pod's image field.
func (s *imageStore) Get(ref string) (*Image, error) {
	canon := NormalizeRef(ref)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refs[canon]
	if !ok {
		return nil, fmt.Errorf("%w: %s (known: %s)", ErrImageNotFound, ref, strings.Join(s.namesLocked(), ", "))
	}
	if img, ok := s.loaded[string(r.manifest.Digest)]; ok {
		cp := *img
		cp.Ref = canon
		return &cp, nil
	}
	img, err := unpackImage(r.layout, r.manifest, filepath.Join(s.dir, "rootfs"))
	if err != nil {
		return nil, err
	}
	s.loaded[string(r.manifest.Digest)] = img
	cp := *img
	cp.Ref = canon
	return &cp, nil
}

func (s *imageStore) namesLocked() []string {
	var out []string
	for k := range s.refs {
		out = append(out, k)
	}
	return out
}

// layoutManifests lists the image manifests of a layout's index.json,
// descending into nested indexes (keeping the outer names) and choosing
// linux/amd64 or unspecified platforms.
func layoutManifests(layout string) ([]ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := readJSON(filepath.Join(layout, "index.json"), &idx); err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	var walk func(ds []ocispec.Descriptor, names map[string]string, depth int) error
	walk = func(ds []ocispec.Descriptor, names map[string]string, depth int) error {
		if depth > 4 {
			return errors.New("image indexes nested too deep")
		}
		for _, d := range ds {
			if d.Platform != nil && (d.Platform.OS != "linux" || d.Platform.Architecture != "amd64") {
				continue
			}
			ann := map[string]string{}
			for k, v := range names {
				ann[k] = v
			}
			for k, v := range d.Annotations {
				ann[k] = v
			}
			switch d.MediaType {
			case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
				var child ocispec.Index
				if err := readJSON(blobPath(layout, d), &child); err != nil {
					return err
				}
				if err := walk(child.Manifests, ann, depth+1); err != nil {
					return err
				}
			default:
				d.Annotations = ann
				out = append(out, d)
			}
		}
		return nil
	}
	return out, walk(idx.Manifests, nil, 0)
}

func blobPath(layout string, d ocispec.Descriptor) string {
	return filepath.Join(layout, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// unpackImage applies the layers of a manifest, in order, to a fresh
// directory under dir (once per manifest).
func unpackImage(layout string, desc ocispec.Descriptor, dir string) (*Image, error) {
	var m ocispec.Manifest
	if err := readJSON(blobPath(layout, desc), &m); err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	var cfg ocispec.Image
	if err := readJSON(blobPath(layout, m.Config), &cfg); err != nil {
		return nil, fmt.Errorf("reading image config %s: %w", m.Config.Digest, err)
	}
	img := &Image{
		ID:             string(m.Config.Digest),
		ManifestDigest: string(desc.Digest),
		Config:         cfg.Config,
		RootFS:         filepath.Join(dir, desc.Digest.Encoded()[:16]),
	}
	if _, err := os.Stat(img.RootFS + ".done"); err == nil {
		return img, nil
	}
	_ = os.RemoveAll(img.RootFS)
	if err := os.MkdirAll(img.RootFS, 0o755); err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if err := applyLayerFile(blobPath(layout, l), l.MediaType, img.RootFS); err != nil {
			return nil, fmt.Errorf("applying layer %s: %w", l.Digest, err)
		}
	}
	if err := os.WriteFile(img.RootFS+".done", nil, 0o644); err != nil {
		return nil, err
	}
	return img, nil
}

func applyLayerFile(p, mediaType, root string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	r, err := decompress(bufio.NewReader(f), mediaType)
	if err != nil {
		return err
	}
	return ApplyLayer(r, root)
}

// decompress picks the layer's compression from its media type, or from its
// first bytes when the media type says nothing (Docker's layer types).
func decompress(r *bufio.Reader, mediaType string) (io.Reader, error) {
	switch {
	case strings.HasSuffix(mediaType, "+zstd") || strings.HasSuffix(mediaType, ".zstd"):
		return nil, fmt.Errorf("zstd layers are not supported (%s)", mediaType)
	case strings.HasSuffix(mediaType, "+gzip") || strings.HasSuffix(mediaType, ".gzip"):
		return gzip.NewReader(r)
	}
	head, _ := r.Peek(2)
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		return gzip.NewReader(r)
	}
	return r, nil
}

// ApplyLayer applies one uncompressed layer tar to root: regular files,
// directories, symlinks, hard links and device nodes with their owners and
// modes, and the OCI whiteouts (".wh.<name>" removes name from the lower
// layers, ".wh..wh..opq" empties the directory it sits in).
func ApplyLayer(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	type dirTimes struct {
		path string
		hdr  *tar.Header
	}
	var dirs []dirTimes
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue
		}
		dir, base := path.Split(name)
		parent, err := safeJoin(root, dir)
		if err != nil {
			return err
		}
		if base == ".wh..wh..opq" {
			entries, _ := os.ReadDir(parent)
			for _, e := range entries {
				if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
					return err
				}
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			if err := os.RemoveAll(filepath.Join(parent, strings.TrimPrefix(base, ".wh."))); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		target := filepath.Join(parent, base)
		if fi, err := os.Lstat(target); err == nil && (!fi.IsDir() || hdr.Typeflag != tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		// FileInfo maps the tar's Unix mode bits (04000 and so on) to
		// os.FileMode's own setuid, setgid and sticky bits.
		fm := hdr.FileInfo().Mode()
		mode := fm.Perm() | fm&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, dirTimes{target, hdr})
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use TypeRegA
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if err := copyEntry(f, tr, hdr); err != nil {
				_ = f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := safeJoin(root, path.Clean("/"+hdr.Linkname))
			if err != nil {
				return err
			}
			if err := os.Link(src, target); err != nil {
				return err
			}
			continue
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			dev, err := deviceNumber(hdr.Devmajor, hdr.Devminor)
			if err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
			if err := unix.Mknod(target, kind|uint32(mode.Perm()), dev); err != nil {
				return err
			}
		default:
			continue // pax headers and the like carry nothing to write
		}
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(target, mode); err != nil {
				return err
			}
			_ = os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Chtimes(dirs[i].path, dirs[i].hdr.ModTime, dirs[i].hdr.ModTime)
	}
	return nil
}

// maxImageFileSize caps each file unpacked from an image archive or a layer.
// The images the agent runs are tens of MiB in all; the cap keeps a corrupt
// or hostile archive (a gzip bomb in a layer) from filling the disk.
const maxImageFileSize = 1 << 30

// copyEntry copies the content of the tar entry hdr to w, and refuses one
// larger than maxImageFileSize before copying any of it.
func copyEntry(w io.Writer, tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Size > maxImageFileSize {
		return fmt.Errorf("%s has %d bytes, more than the %d a file of an image may have", hdr.Name, hdr.Size, maxImageFileSize)
	}
	_, err := io.CopyN(w, tr, hdr.Size)
	return err
}

// deviceNumber encodes a device's major and minor numbers as Linux's dev_t,
// as unix.Mkdev does, and refuses numbers the kernel cannot hold (12 bits of
// major, 20 of minor) rather than let them wrap round to another device.
func deviceNumber(major, minor int64) (int, error) {
	if major < 0 || major > 0xfff || minor < 0 || minor > 0xfffff {
		return 0, fmt.Errorf("device number %d:%d is out of range", major, minor)
	}
	return int(major<<8 | minor&0xff | (minor&^0xff)<<12), nil
}

// safeJoin joins a layer path to root and refuses paths that pass through a
// symbolic link, so a layer cannot write outside its root.
func safeJoin(root, p string) (string, error) {
	cur := root
	for _, part := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		if fi, err := os.Lstat(cur); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("layer path %s passes through the symbolic link %s", p, cur)
		}
	}
	return cur, nil
}

// extractPlain extracts an OCI archive (a plain tar of a layout) to dir.
func extractPlain(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(bufio.NewReader(f))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + hdr.Name)
		target := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			if err := copyEntry(out, tr, hdr); err != nil {
				_ = out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		}
	}
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteOCIArchive writes a single-layer OCI archive holding files (path in
// the image -> content, mode 0755) with the given config, named by refs.
// The tests build their images with it; it is also handy for trying the
// agent without buildah.
func WriteOCIArchive(out string, files map[string][]byte, cfg ocispec.ImageConfig, refs ...string) error {
	// The diff ID is the digest of the uncompressed layer: hash the tar as
	// it is written rather than decompress it again.
	var layer bytes.Buffer
	gz := gzip.NewWriter(&layer)
	uncompressed := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(gz, uncompressed))
	dirs := map[string]bool{}
	for name, data := range files {
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		_ = data
	}
	for d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(name, "/"), Mode: 0o755, Size: int64(len(data))}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	diffID := "sha256:" + hex.EncodeToString(uncompressed.Sum(nil))
	blobs := map[string][]byte{}
	put := func(b []byte) ocispec.Descriptor {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[hex.EncodeToString(sum[:])] = b
		return ocispec.Descriptor{Digest: digest.Digest(d), Size: int64(len(b))}
	}
	layerDesc := put(layer.Bytes())
	layerDesc.MediaType = ocispec.MediaTypeImageLayerGzip
	cfgJSON, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.Digest(diffID)}},
	})
	if err != nil {
		return err
	}
	cfgDesc := put(cfgJSON)
	cfgDesc.MediaType = ocispec.MediaTypeImageConfig
	man := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layerDesc}}
	man.SchemaVersion = 2
	manJSON, err := json.Marshal(man)
	if err != nil {
		return err
	}
	manDesc := put(manJSON)
	manDesc.MediaType = ocispec.MediaTypeImageManifest
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, r := range refs {
		d := manDesc
		d.Annotations = map[string]string{ocispec.AnnotationRefName: r}
		idx.Manifests = append(idx.Manifests, d)
	}
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw = tar.NewWriter(f)
	write := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		_ = f.Close()
		return err
	}
	if err := write("index.json", idxJSON); err != nil {
		_ = f.Close()
		return err
	}
	for sum, b := range blobs {
		if err := write("blobs/sha256/"+sum, b); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
