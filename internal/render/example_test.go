package render_test

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/vaultsync/vaultsync/internal/render"
)

func ExampleExtractProperty() {
	secret := []byte(`{"db":{"user":"app","port":5432},"hosts":["a","b"],"a.b":true}`)
	for _, path := range []string{"db.user", "db.port", "hosts.1", `a\.b`, "db"} {
		v, err := render.ExtractProperty(secret, path)
		fmt.Printf("%s => %s %v\n", path, v, err)
	}
	_, err := render.ExtractProperty(secret, "db.password")
	fmt.Println(render.Reason(err), err)
	// Output:
	// db.user => app <nil>
	// db.port => 5432 <nil>
	// hosts.1 => b <nil>
	// a\.b => true <nil>
	// db => {"user":"app","port":5432} <nil>
	// PropertyNotFound property not found: "db" has no field "password" (fields: "port", "user")
}

func ExampleRenderTemplates() {
	values := map[string][]byte{"user": []byte("app"), "db-password": []byte("p@ss")}
	out, err := render.RenderTemplates(map[string]string{
		"dsn": `postgres://{{ .user }}:{{ index . "db-password" | urlquery }}@db:5432/app`,
	}, values)
	fmt.Println(string(out["dsn"]), err)
	// Output: postgres://app:p%40ss@db:5432/app <nil>
}

func ExampleRewrite() {
	fields, _ := render.FlattenJSON([]byte(`{"app-user":"u","app-port":1}`))
	re := regexp.MustCompile(`^app-`)
	var keys []string
	for k := range fields {
		key := render.Rewrite(k, re, "db_")
		if render.ValidateKey(key) == nil {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	fmt.Println(keys)
	// Output: [db_port db_user]
}
