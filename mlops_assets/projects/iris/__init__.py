"""Fisher's Iris (multiclass classification). The declaration is `project.PROJECT`; `domain` is plain data the serving app reads."""
