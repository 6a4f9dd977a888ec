module github.com/smpcall/smpcall

go 1.26.0
